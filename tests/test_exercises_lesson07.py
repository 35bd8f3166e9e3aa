"""Lesson 07's exercise checks: plausible wrong answers fail with a message that says what is wrong;
correct answers written differently from the notebook's solutions pass."""

from __future__ import annotations

import pytest
import torch
from helpers import fails, passes

from ftcore.sweep import average, best

# --- 06.1: the L2-SP penalty ------------------------------------------------------------------

def _l2sp(model, start, strength, *, factor=0.5, frozen_too=False, skip=True,
          term=lambda w, w0: ((w - w0) ** 2).sum()):
    """A correct penalty by default (a list and sum()); each keyword switches on one mistake."""
    terms = [term(w, start[name]) for name, w in model.named_parameters()
             if (w.requires_grad or frozen_too)
             and (not skip or (name in start and start[name].shape == w.shape))]
    return factor * strength * sum(terms)


def test_06_1_passes_as_a_sum_of_a_list():
    passes("07.1", _l2sp)


@pytest.mark.parametrize("mistake, fragment", [
    ({"factor": 1.0}, "weight_decay=strength adds to each gradient.*compare your factor"),
    ({"term": lambda w, w0: ((w - w0) ** 2).mean()}, "compare your factor"),
    ({"frozen_too": True}, "includes frozen parameters"),
    ({"term": lambda w, w0: ((w.detach() - w0) ** 2).sum()}, "does not depend on the model's"),
    ({"skip": False}, "raised KeyError"),
])
def test_06_1_wrong_penalties_point_to_the_mistake(mistake, fragment):
    fails("07.1", lambda model, start, strength: _l2sp(model, start, strength, **mistake),
           fragment)


def test_06_1_a_python_number_is_not_a_penalty_autograd_can_use():
    fails("07.1", lambda model, start, strength: _l2sp(model, start, strength).item(),
           "must be a scalar tensor")


def test_06_1_a_head_of_another_shape_must_be_skipped():
    def by_name_only(model, start, strength):
        return strength / 2 * sum(((w - start[name]) ** 2).sum()
                                  for name, w in model.named_parameters()
                                  if w.requires_grad and name in start)

    fails("07.1", by_name_only, "raised RuntimeError")


# --- 06.2: inverted dropout -------------------------------------------------------------------

def _dropout(x, p, training=True, generator=None, *, scale=None, keep_if_below=None,
             own_generator=False, ignore_training=False):
    """A correct dropout by default (with torch.bernoulli); each keyword is one mistake."""
    if not training and not ignore_training:
        return x
    if own_generator:
        generator = torch.Generator().manual_seed(0)
    if keep_if_below is not None:
        mask = torch.rand(x.shape, generator=generator) < keep_if_below(p)
    else:
        mask = torch.bernoulli(torch.full(x.shape, 1 - p), generator=generator)
    return x * mask * (1 / (1 - p) if scale is None else scale(p))


def test_06_2_passes_with_bernoulli():
    passes("07.2", _dropout)


@pytest.mark.parametrize("mistake, fragment", [
    ({"scale": lambda p: 1.0}, "surviving units keep their value"),
    ({"scale": lambda p: 1 - p}, "mean of the output is not the mean of the input"),
    ({"keep_if_below": lambda p: p}, "probability of dropping a unit, not of keeping it"),
    ({"ignore_training": True}, r"training=False .*must return x"),
    ({"own_generator": True}, "two calls gave the same mask"),
])
def test_06_2_wrong_dropouts_point_to_the_mistake(mistake, fragment):
    fails("07.2", lambda x, p, training=True, generator=None: _dropout(
        x, p, training, generator, **mistake), fragment)


def test_06_2_one_mask_per_column_and_an_ignored_generator_are_caught():
    def per_column(x, p, training=True, generator=None):
        if not training:
            return x
        return x * (torch.rand(x.shape[-1], generator=generator) >= p) / (1 - p)

    def global_generator(x, p, training=True, generator=None):
        return _dropout(x, p, training, None)

    fails("07.2", per_column, "every row got the same mask")
    fails("07.2", global_generator, "two generators seeded alike")


def test_06_2_a_mask_applied_outside_autograd_is_caught():
    def detached(x, p, training=True, generator=None):
        if not training:
            return x
        mask = torch.rand(x.shape, generator=generator) >= p
        return torch.where(mask, x.detach() / (1 - p), torch.zeros(()))

    fails("07.2", detached, "gradient with respect to x")


# --- 06.3: choose on validation, report on test -----------------------------------------------

def test_06_3_passes_with_plain_dicts():
    def choose(runs, params):
        groups = {}
        for run in runs:
            groups.setdefault(tuple(run[name] for name in params), []).append(run)
        key = max(groups, key=lambda k: sum(r["val_acc"] for r in groups[k]) / len(groups[k]))
        chosen = groups[key]
        return dict(zip(params, key, strict=True)), sum(r["test_acc"] for r in chosen) / len(chosen)

    passes("07.3", choose)


def _setting(record, params):
    return {name: record[name] for name in params}


@pytest.mark.parametrize("wrong, fragment", [
    (lambda runs, params: (_setting(best(average(runs, params, ["test_acc"]), "test_acc"), params),
                           0.9), "the best test accuracy"),
    (lambda runs, params: (_setting(best(runs, "val_acc"), params), 0.9), "the best single run"),
    (lambda runs, params: (_setting(best(average(runs, params, ["val_acc"]), "val_acc", "min"),
                                    params), 0.9), "the lowest validation accuracy"),
    (lambda runs, params: (best(average(runs, params, ["val_acc", "test_acc"]), "val_acc"), 0.9),
     "must have exactly the keys"),
])
def test_06_3_wrong_choices_point_to_the_mistake(wrong, fragment):
    fails("07.3", wrong, fragment)


def test_06_3_the_test_accuracy_must_be_the_chosen_settings_mean():
    def best_test_run(runs, params):
        setting = _setting(best(average(runs, params, ["val_acc"]), "val_acc"), params)
        mine = [r for r in runs if _setting(r, params) == setting]
        return setting, best(mine, "test_acc")["test_acc"]

    fails("07.3", best_test_run, "mean test_acc of the chosen setting's runs")
