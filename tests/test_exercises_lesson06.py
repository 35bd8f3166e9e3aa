"""Lesson 06's exercise checks: plausible wrong answers fail with a message that says what is wrong;
correct answers written differently from the notebook's solutions pass."""

from __future__ import annotations

import pytest
import torch
from helpers import fails, passes

# --- 05.1: diagnose a run from its curves -----------------------------------------------------

def _diagnose(history, underfit_below=0.85, overfit_gap=0.12, loss_rise=1.2, *,
              summary=lambda values: values[-1], gap_first=False, reference=min,
              use_loss=True, fixed=False):
    """A correct diagnosis by default; each keyword switches on one mistake."""
    if fixed:
        underfit_below, overfit_gap, loss_rise = 0.85, 0.12, 1.2
    train, val = summary(history.column("train_acc")), summary(history.column("val_acc"))
    losses = history.column("val_loss")
    overfit = train - val > overfit_gap or (use_loss and losses[-1] > loss_rise * reference(losses))
    if gap_first and overfit:
        return "overfit"
    if train < underfit_below:
        return "underfit"
    return "overfit" if overfit else "good fit"


def test_05_1_passes_from_the_records_one_question_at_a_time():
    def diagnose(history, underfit_below=0.85, overfit_gap=0.12, loss_rise=1.2):
        final = history.records[-1]
        lowest = min(record["val_loss"] for record in history.records)
        if final["train_acc"] < underfit_below:
            return "underfit"
        if final["train_acc"] - final["val_acc"] > overfit_gap:
            return "overfit"
        if final["val_loss"] > loss_rise * lowest:
            return "overfit"
        return "good fit"

    passes("06.1", diagnose)
    passes("06.1", _diagnose)


@pytest.mark.parametrize("mistake, fragment", [
    ({"gap_first": True}, "asks first whether the model fits its training set"),
    ({"use_loss": False}, "compare the final validation loss with its lowest value"),
    ({"reference": lambda losses: losses[0]}, "compare the final validation loss with its lowest"),
    ({"summary": lambda values: sum(values) / len(values)}, "not its best or its mean"),
    ({"fixed": True}, "use the thresholds the function is given"),
])
def test_05_1_wrong_diagnoses_point_to_the_mistake(mistake, fragment):
    fails("06.1", lambda history, **kwargs: _diagnose(history, **kwargs, **mistake), fragment)


def test_05_1_an_unknown_verdict_lists_the_three():
    fails("06.1", lambda history, **kwargs: "overfitting", "one of 'underfit', 'overfit'")


# --- 05.2: shuffle a fraction of the labels ---------------------------------------------------

def _shuffled(labels, fraction, seed, *, choose=None, new_values=None, in_place=False,
              generator=True):
    """A correct answer by default (written with argsort); each keyword is one mistake."""
    g = torch.Generator().manual_seed(seed) if generator else None
    n, k = len(labels), round(fraction * len(labels))
    positions = choose(n, k) if choose else torch.rand(n, generator=g).argsort()[:k]
    out = labels if in_place else labels.clone()
    values = (new_values(labels, positions, g) if new_values
              else labels[positions][torch.rand(k, generator=g).argsort()])
    out[positions] = values
    return out


def test_05_2_passes_with_argsort_draws():
    passes("06.2", _shuffled)


@pytest.mark.parametrize("mistake, fragment", [
    ({"new_values": lambda labels, positions, g: torch.randint(
        0, 10, (len(positions),), generator=g)}, "number of labels of some class changed"),
    ({"new_values": lambda labels, positions, g: labels[torch.randperm(
        len(labels), generator=g)][:len(positions)]}, "number of labels of some class changed"),
    ({"in_place": True}, "changed the labels it was given"),
    ({"choose": lambda n, k: torch.arange(k)}, "only labels near the start changed"),
    ({"generator": False}, "same seed gave different labels"),
    ({"new_values": lambda labels, positions, g: labels[positions]}, "only 0 of 600 labels"),
])
def test_05_2_wrong_shuffles_point_to_the_mistake(mistake, fragment):
    fails("06.2", lambda labels, fraction, seed: _shuffled(labels, fraction, seed, **mistake),
           fragment)


def test_05_2_shuffling_every_label_whatever_the_fraction_is_caught():
    def shuffle_all(labels, fraction, seed):
        return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))]

    fails("06.2", shuffle_all, "more than fraction x N")


def test_diagnose_with_the_best_instead_of_the_final_values_fails():
    def diagnose(history, underfit_below=0.85, overfit_gap=0.12, loss_rise=1.2):
        train, val = max(history.column("train_acc")), max(history.column("val_acc"))
        if train < underfit_below:
            return "underfit"
        turned_up = history.last["val_loss"] > loss_rise * min(history.column("val_loss"))
        return "overfit" if train - val > overfit_gap or turned_up else "good fit"

    fails("06.1", diagnose, "peaked mid-run.*not its best")
