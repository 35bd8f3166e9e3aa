"""Checks for lesson 06's exercises: diagnosing a run from its learning curves, and shuffling a
fraction of the labels while keeping every class's count (Zhang et al.'s random labels)."""

from __future__ import annotations

from random import Random

import torch

from ..train import History
from .checks import Exercise, expect

_RANDOM = Random(0)  # the checks' inputs; each check reseeds it, so a verdict never depends on luck
REGIMES = ("underfit", "overfit", "good fit")


# --- 06.1 -------------------------------------------------------------------------------------

def _history(train_acc: float, val_acc: float, val_loss: tuple[float, float, float]) -> History:
    """A synthetic ``History`` with an odd number of epochs: the accuracies rise (with a little
    noise) to their final values; the validation loss goes from ``val_loss[0]`` at the first
    epoch to ``val_loss[1]`` at the middle one and ``val_loss[2]`` at the last, linearly."""
    half = _RANDOM.randint(4, 12)
    records = []
    for e in range(1, 2 * half + 2):
        t, noise = e / (2 * half + 1), (_RANDOM.uniform(-0.01, 0.01) if e <= 2 * half else 0)
        first, second = (0, 1) if e <= half + 1 else (1, 2)
        w = (e - 1) / half - first
        train = min(0.3 + (train_acc - 0.3) * t ** 0.5 + noise, 1.0)
        records.append({"epoch": e, "train_loss": 2 * (1 - train) + 0.01, "train_acc": train,
                        "val_loss": val_loss[first] + w * (val_loss[second] - val_loss[first]),
                        "val_acc": min(0.3 + (val_acc - 0.3) * t ** 0.5 + noise, 1.0),
                        "seconds": 0.1})
    return History(records)


def _peaked(train_acc: float, val_acc: float) -> History:
    """Like :func:`_history` (falling validation loss), but validation accuracy peaks mid-run
    within 0.02 of the final training accuracy before falling to ``val_acc``."""
    records = _history(train_acc, val_acc, (1.8, 0.7, 0.45)).records
    middle = len(records) // 2
    records[middle] = {**records[middle], "val_acc": train_acc - 0.02}
    return History(records)


def _cases():
    """(history, keyword arguments, verdict, what the curves show, where to look if wrong)."""
    u = _RANDOM.uniform
    falling = (u(1.5, 2.0), u(0.6, 0.8), u(0.4, 0.5))
    rising = (u(1.2, 1.5), u(0.3, 0.4), u(0.6, 0.7))       # lowest in the middle, then up
    low, fits = u(0.55, 0.7), u(0.96, 0.99)
    return [
        (_history(low, low - u(0.02, 0.06), falling), {}, "underfit",
         "low training accuracy and a small gap",
         "compare the final training accuracy with underfit_below"),
        (_history(fits, fits - u(0.03, 0.05), falling), {}, "good fit",
         "high training accuracy, a small gap and a falling validation loss",
         "use each quantity's final value (the last record), not its best or its mean"),
        (_history(u(0.72, 0.78), u(0.45, 0.5), falling), {}, "underfit",
         "training accuracy below underfit_below and a large gap",
         "the rule asks first whether the model fits its training set at all"),
        (_history(u(0.98, 1.0), u(0.75, 0.8), falling), {}, "overfit",
         "a large gap between final training and validation accuracy",
         "compare the final gap (train_acc - val_acc) with overfit_gap"),
        (_peaked(u(0.98, 1.0), u(0.75, 0.8)), {}, "overfit",
         "validation accuracy that peaked mid-run and then fell, leaving a large final gap",
         "use each quantity's final value (the last record), not its best"),
        (_history(u(0.97, 1.0), u(0.92, 0.94), rising), {}, "overfit",
         "a small gap, but a validation loss that fell and then rose to about twice its lowest "
         "value (yet below where it started)",
         "compare the final validation loss with its lowest value over the run"),
        (_history(u(0.9, 0.93), u(0.88, 0.9), falling), {"underfit_below": 0.95}, "underfit",
         "final training accuracy below a custom underfit_below=0.95",
         "use the thresholds the function is given, not fixed numbers"),
        (_history(u(0.97, 0.99), u(0.91, 0.92), falling), {"overfit_gap": 0.03}, "overfit",
         "a gap above a custom overfit_gap=0.03",
         "use the thresholds the function is given, not fixed numbers"),
        (_history(u(0.97, 1.0), u(0.93, 0.95), (1.5, 0.4, 0.52)), {"loss_rise": 1.5},
         "good fit", "a validation loss 1.3 times its lowest value, with loss_rise=1.5",
         "use the thresholds the function is given, not fixed numbers"),
    ]


def _check_diagnose(diagnose) -> None:
    _RANDOM.seed(51)
    for history, kwargs, verdict, shows, look in _cases():
        answer = diagnose(history, **kwargs)
        expect(answer in REGIMES, f"diagnose returned {answer!r}; it must return one of "
                                  f"{', '.join(repr(r) for r in REGIMES)}")
        given = f" (called with {kwargs})" if kwargs else ""
        expect(answer == verdict, f"for a run with {shows}{given}, you answered {answer!r}: "
                                  f"{look}")


# --- 06.2 -------------------------------------------------------------------------------------

def _check_shuffle(shuffle_labels) -> None:
    _RANDOM.seed(52)
    n, classes = 600, 10
    weights = torch.tensor([_RANDOM.uniform(0.3, 1.0) for _ in range(classes)])
    labels = torch.multinomial(weights, n, replacement=True,
                               generator=torch.Generator().manual_seed(_RANDOM.randrange(2**31)))
    original = labels.clone()
    seed = _RANDOM.randrange(1000)
    for fraction in (0.0, 0.3, 1.0):
        out = shuffle_labels(labels, fraction, seed)
        expect(torch.equal(labels, original), "your function changed the labels it was given: "
                                              "work on a copy (labels.clone())")
        expect(isinstance(out, torch.Tensor) and out.shape == labels.shape
               and out.dtype == labels.dtype,
               "return a tensor of the same shape and dtype as labels")
        expect(torch.equal(torch.bincount(out, minlength=classes),
                           torch.bincount(labels, minlength=classes)),
               f"with fraction={fraction}, the number of labels of some class changed: new "
               "labels must be a rearrangement of the old ones, not fresh random draws")
        chosen = round(fraction * n)
        changed = (out != labels).nonzero().squeeze(1)
        expect(len(changed) <= chosen,
               f"with fraction={fraction}, {len(changed)} of {n} labels changed, more than "
               "fraction x N: shuffle only the labels at the chosen positions")
        if fraction == 0:
            continue
        expect(len(changed) >= 0.6 * chosen,
               f"with fraction={fraction}, only {len(changed)} of {n} labels changed: the labels "
               "at the chosen positions must be shuffled among themselves")
        expect(fraction == 1 or int(changed.max()) >= chosen,
               f"with fraction={fraction}, only labels near the start changed: choose the "
               "positions to shuffle at random")
        expect(torch.equal(out, shuffle_labels(labels, fraction, seed)),
               "two calls with the same seed gave different labels: draw every random number "
               "from a torch.Generator seeded with seed")
    expect(not torch.equal(shuffle_labels(labels, 0.5, seed),
                           shuffle_labels(labels, 0.5, seed + 1)),
           "two different seeds gave the same labels: seed the generator with seed")


EXERCISES: list[Exercise] = [
    Exercise("06.1", "Diagnose a run from its learning curves",
             hint="read the last epoch: first ask whether the model fits its own training data at"
                  " all, then whether validation lags behind (a gap, or a loss well above its "
                  "best)",
             test=_check_diagnose),
    Exercise("06.2", "Shuffle a fraction of the labels",
             hint="choose at random which positions to shuffle, then permute the labels among "
                  "those positions only, with a generator made from `seed`",
             test=_check_shuffle),
]
