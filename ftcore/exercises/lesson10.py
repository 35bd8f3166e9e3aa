"""Checks for lesson 10's exercises: the recipe's decisions (relabelling, a balanced metric,
choosing on validation, keeping the old head)."""

from __future__ import annotations

import copy
import math

import torch
from sklearn.metrics import balanced_accuracy_score

from .checks import Exercise, expect, unchanged


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- 10.1 relabel fine classes into departments -----------------------------------------------

def _check_departments(to_departments) -> None:
    for seed in (0, 1):
        g = _generator(seed)
        order = torch.randperm(10, generator=g).tolist()
        groups = [order[:4], order[4:6], order[6:9], order[9:]]   # 4 groups of 4, 2, 3, 1
        labels = torch.randint(0, 10, (300,), generator=g)
        original = labels.clone()
        coarse = to_departments(labels, groups)
        expect(isinstance(coarse, torch.Tensor) and coarse.shape == labels.shape,
               "return a tensor with one department label per image, shape (N,) like `labels`")
        expect(not coarse.is_floating_point(),
               "department labels must be integers (int64), usable as class labels")
        expect(torch.equal(labels, original), "your function changed `labels` in place; "
                                               "build a new tensor instead")
        expect(coarse.min() >= 0 and coarse.max() < len(groups),
               "department labels must lie in 0..len(groups)-1: the position of the group in "
               "`groups`, not the fine label itself")
        for department, members in enumerate(groups):
            inside = torch.isin(labels, torch.tensor(members))
            expect(bool((coarse[inside] == department).all()),
                   f"images whose fine label is in groups[{department}] must all get department "
                   f"{department} (the index of the group in `groups`, not the position of the "
                   "label inside its group)")


# --- 10.2 balanced accuracy ---------------------------------------------------------------------

def _check_balanced_accuracy(balanced_accuracy) -> None:
    g = _generator(2)
    counts = [240, 120, 60, 20]                        # imbalanced, like the departments
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    labels = labels[torch.randperm(len(labels), generator=g)]
    lazy = torch.zeros_like(labels)                    # always the biggest class
    noisy = torch.where(torch.rand(len(labels), generator=g) < 0.7, labels,
                        torch.randint(0, 4, labels.shape, generator=g))
    for predicted, what in ((noisy, "a model that is right ~75% of the time"),
                            (lazy, "a model that always predicts class 0")):
        score = unchanged(balanced_accuracy, labels, predicted, len(counts),
                          what="`labels` or `predicted`")
        expect(isinstance(score, (float, int)) or (isinstance(score, torch.Tensor)
                                                   and score.numel() == 1),
               "return one number (a float)")
        score = float(score)
        plain = (predicted == labels).float().mean().item()
        expect(not math.isclose(score, plain, abs_tol=1e-6),
               f"for {what} your score equals plain accuracy: in balanced accuracy every class "
               "counts the same, however many images it has")
        expect(math.isclose(score, balanced_accuracy_score(labels, predicted), abs_tol=1e-6),
               f"wrong value for {what}: balanced accuracy is the mean over classes of the "
               "recall, the share of each class's images predicted as that class")


# --- 10.3 choose the learning rate on validation ------------------------------------------------

def _check_choose_lr(choose_lr) -> None:
    # lr 0.01 has the best mean validation score; 0.1 has the single best validation run (and a
    # bad one); 0.3 has the best test scores. Only the first is a sound choice.
    val = {0.001: (0.70, 0.72), 0.01: (0.88, 0.87), 0.1: (0.93, 0.70), 0.3: (0.60, 0.62)}
    test = {0.001: 0.70, 0.01: 0.85, 0.1: 0.80, 0.3: 0.95}
    for scale in (1.0, 3.0):              # the same story at other learning rates
        records = [{"lr": lr * scale, "seed": seed, "val_bal_acc": score,
                    "test_bal_acc": test[lr] - 0.01 * seed}
                   for lr, scores in val.items() for seed, score in enumerate(scores)]
        given = copy.deepcopy(records)
        chosen = choose_lr(records)
        expect(records == given, "your function changed the records; read them, do not edit")
        expect(chosen != 0.3 * scale, "you chose with the test scores: the test split must play "
                                      "no part in any choice (use the validation scores)")
        expect(chosen != 0.1 * scale, "you chose the learning rate of the single luckiest run; "
                                      "average the validation score over the seeds first")
        expect(chosen == 0.01 * scale, "return the learning rate (a value of 'lr') whose mean "
                                       "validation balanced accuracy over the seeds is highest")


EXERCISES: list[Exercise] = [
    Exercise("10.1", "Fine classes to departments",
             "every fine label belongs to exactly one group: can you build a table from fine "
             "label to group once, and use it for all the labels at the same time?",
             _check_departments),
    Exercise("10.2", "Balanced accuracy",
             "for each class c, the recall is the share of images of class c predicted as c; "
             "return the mean of the recalls", _check_balanced_accuracy),
    Exercise("10.3", "Choose the learning rate on validation",
             "average over the seeds before comparing, and let validation alone decide "
             "(ftcore.sweep has helpers for both)",
             _check_choose_lr),
]
