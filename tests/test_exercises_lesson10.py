"""Lesson 10's exercise checks: a plausible wrong answer fails with a message that says what is
wrong; a correct answer written differently from the notebook's passes."""

from __future__ import annotations

import statistics

import torch
from helpers import fails, passes

# --- 10.1 -------------------------------------------------------------------------------------

def test_departments_by_comparison_passes():
    def to_departments(labels, groups):
        coarse = torch.full_like(labels, -1)
        for department, members in enumerate(groups):
            coarse[torch.isin(labels, torch.tensor(members))] = department
        return coarse

    passes("10.1", to_departments)


def test_departments_with_the_position_inside_the_group_fails():
    def to_departments(labels, groups):
        where = {label: members.index(label) for members in groups for label in members}
        return torch.tensor([where[int(label)] for label in labels])

    fails("10.1", to_departments, "not the position of the label inside its group")


def test_departments_written_into_labels_fails():
    def to_departments(labels, groups):
        lookup = {label: d for d, members in enumerate(groups) for label in members}
        for i, label in enumerate(labels.tolist()):
            labels[i] = lookup[label]
        return labels

    fails("10.1", to_departments, "changed `labels` in place")


# --- 10.2 -------------------------------------------------------------------------------------

def test_balanced_accuracy_by_confusion_matrix_passes():
    def balanced_accuracy(labels, predicted, num_classes):
        matrix = torch.zeros(num_classes, num_classes)
        matrix.index_put_((labels, predicted), torch.ones(len(labels)), accumulate=True)
        present = matrix.sum(dim=1) > 0
        return float((matrix.diag()[present] / matrix.sum(dim=1)[present]).mean())

    passes("10.2", balanced_accuracy)


def test_plain_accuracy_fails():
    fails("10.2", lambda labels, predicted, num_classes: (labels == predicted).float().mean(),
          "equals plain accuracy")


def test_precision_instead_of_recall_fails():
    def balanced_precision(labels, predicted, num_classes):
        scores = [(labels[predicted == c] == c).float().mean() for c in range(num_classes)
                  if (predicted == c).any()]
        return float(torch.stack(scores).mean())

    fails("10.2", balanced_precision, "wrong value")


# --- 10.3 -------------------------------------------------------------------------------------

def test_choose_lr_with_statistics_passes():
    def choose_lr(records):
        lrs = sorted({r["lr"] for r in records})
        return max(lrs, key=lambda lr: statistics.fmean(r["val_bal_acc"] for r in records
                                                        if r["lr"] == lr))

    passes("10.3", choose_lr)


def test_choosing_on_test_fails():
    fails("10.3", lambda records: max(records, key=lambda r: r["test_bal_acc"])["lr"],
          "test scores")


def test_choosing_the_luckiest_run_fails():
    fails("10.3", lambda records: max(records, key=lambda r: r["val_bal_acc"])["lr"],
          "luckiest run")
