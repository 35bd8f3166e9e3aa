"""Checks for lesson 07's exercises: the L2-SP penalty (checked against autograd and against
SGD's weight decay), inverted dropout (checked statistically), and choosing hyper-parameters on
the validation split only."""

from __future__ import annotations

import math
from random import Random

import torch

from ..models import SmallCNN
from ..surgery import freeze
from .checks import Exercise, expect

_RANDOM = Random(0)  # the checks' inputs; each check reseeds it, so a verdict never depends on luck


# --- 07.1 -------------------------------------------------------------------------------------

def _tiny_cnn(num_classes: int, seed: int) -> SmallCNN:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SmallCNN(num_classes, width=2, hidden=8, dropout=0.0)


def _as_tensor(value, what: str) -> torch.Tensor:
    expect(isinstance(value, torch.Tensor) and value.dim() == 0,
           f"{what} must be a scalar tensor (0 dimensions), got {type(value).__name__}"
           f"{' of shape ' + str(tuple(value.shape)) if isinstance(value, torch.Tensor) else ''}")
    expect(value.requires_grad, f"{what} does not depend on the model's weights for autograd: "
                                "keep it a tensor computed from the parameters (no .item(), no "
                                ".detach(), no torch.tensor(...) around it)")
    return value


def _check_weight_decay(l2sp) -> None:
    """With a reference of zeros, L2-SP is plain L2, whose gradient is the term that SGD's
    ``weight_decay=strength`` adds to every gradient: ``strength * w``."""
    model, strength = _tiny_cnn(3, _RANDOM.randrange(2**31)), _RANDOM.uniform(0.05, 0.5)
    zeros = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    _as_tensor(l2sp(model, zeros, strength), "the penalty").backward()
    expect(all(p.grad is not None and torch.allclose(p.grad, strength * p.detach(), atol=1e-6)
               for p in model.parameters()),
           "with a reference of all zeros, L2-SP is the plain L2 penalty, so its gradient must be "
           "the term that SGD's weight_decay=strength adds to each gradient (lesson 01); yours "
           "is not: compare your factor with the formula")


def _check_l2sp(l2sp) -> None:
    _RANDOM.seed(61)
    _check_weight_decay(l2sp)
    seed, strength = _RANDOM.randrange(2**31), _RANDOM.uniform(0.05, 0.5)
    pretrained, model = _tiny_cnn(10, seed), _tiny_cnn(4, seed + 1)  # heads of different sizes
    start = {name: p.detach().clone() for name, p in pretrained.named_parameters()
             if name != "features.fc.linear.bias"}   # a parameter with no starting point
    kept = {name: w.clone() for name, w in start.items()}
    freeze(model, "features.conv1")
    penalty = _as_tensor(l2sp(model, start, strength), "the penalty")
    expect(all(torch.equal(start[name], kept[name]) for name in start),
           "your function changed the reference weights: only read them")
    terms = {name: (p.detach() - start[name]).pow(2).sum().item()
             for name, p in model.named_parameters()
             if name in start and start[name].shape == p.shape}
    frozen = sum(v for name, v in terms.items() if name.startswith("features.conv1"))
    trainable = sum(v for name, v in terms.items() if not name.startswith("features.conv1"))
    value = penalty.item()
    expect(not math.isclose(value, strength / 2 * (frozen + trainable), rel_tol=1e-4),
           "the penalty includes frozen parameters (requires_grad=False): only the trainable "
           "parameters are fine-tuned, so only they are penalised")
    expect(math.isclose(value, strength / 2 * trainable, rel_tol=1e-4),
           "the penalty's value does not match (strength / 2) x the sum of (w - w0)^2 over the "
           "trainable parameters that have a starting point of the same name and shape")
    penalty.backward()
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        has_start = name in start and start[name].shape == p.shape
        expected = strength * (p.detach() - start[name]) if has_start else torch.zeros_like(p)
        got = p.grad if p.grad is not None else torch.zeros_like(p)
        expect(torch.allclose(got, expected, atol=1e-6),
               f"the gradient of your penalty for '{name}' is not strength x (w - w0)"
               if has_start else f"'{name}' has no starting point (no parameter of that name and "
               "shape in the reference), so the penalty must not depend on it")
    model.zero_grad()
    same = _as_tensor(l2sp(model, {n: p.detach().clone() for n, p in model.named_parameters()},
                           strength), "the penalty")
    expect(abs(same.item()) < 1e-9, "at the starting point itself (w = w0) the penalty must be 0")


# --- 07.2 -------------------------------------------------------------------------------------

def _check_dropout(dropout) -> None:
    _RANDOM.seed(62)
    shape = (_RANDOM.choice((40, 64)), _RANDOM.choice((500, 800)))
    x = torch.rand(shape, generator=torch.Generator().manual_seed(62)) + 0.5
    for p in (0.25, 0.6):
        out = dropout(x, p, training=False)
        expect(isinstance(out, torch.Tensor) and torch.equal(out, x),
               f"with training=False (evaluation mode), dropout(x, p={p}) must return x "
               "unchanged")
        leaf = x.clone().requires_grad_(True)
        out = dropout(leaf, p, training=True)
        expect(isinstance(out, torch.Tensor) and out.shape == x.shape,
               "the output must be a tensor of the same shape as x")
        kept = out != 0
        expect(len({tuple(row.tolist()) for row in kept[:4]}) > 1,
               "every row got the same mask: draw one random number per element of x, not per "
               "column")
        zeros = (out == 0).float().mean().item()
        expect(abs(zeros - (1 - p)) > 0.05,
               f"with p={p}, {zeros:.0%} of the units were zeroed: p is the probability of "
               "dropping a unit, not of keeping it")
        expect(abs(zeros - p) < 0.02, f"with p={p}, {zeros:.0%} of the units were zeroed: "
                                      "each unit must be dropped with probability p")
        scale = (out[kept] / x[kept]).detach()
        expect(torch.allclose(scale, torch.full_like(scale, scale[0].item()), rtol=1e-5),
               f"with p={p}, the units that survive are not all multiplied by the same factor")
        expect(not math.isclose(scale[0].item(), 1.0, rel_tol=1e-4),
               f"with p={p}, the surviving units keep their value, so on average the output is "
               "smaller than the input: rescale the survivors (inverted dropout)")
        expect(abs(out.mean().item() / x.mean().item() - 1) < 0.05,  # > 5 standard errors
               f"with p={p}, the mean of the output is not the mean of the input: the factor "
               "applied to the survivors must keep every unit's expected value unchanged")
        again = dropout(x, p, training=True)
        expect(not torch.equal(again != 0, kept),
               "two calls gave the same mask: every call must draw a fresh one (do not reseed "
               "inside the function)")
        through = ("the gradient with respect to x must go through the same mask and factor as "
                   "the output: compute the output from x with tensor operations (no .detach())")
        expect(out.requires_grad, through)
        out.sum().backward()
        expect(leaf.grad is not None and torch.allclose(leaf.grad, kept.float() * scale[0]),
               through)
        seed = _RANDOM.randrange(2**31)
        draws = [dropout(x, p, training=True, generator=torch.Generator().manual_seed(seed))
                 for _ in range(2)]
        expect(torch.equal(*draws), "with two generators seeded alike, the outputs differ: "
                                    "draw the mask with the generator you are given")
    expect(torch.equal(dropout(x, 0.0, training=True), x),
           "with p=0 nothing is dropped, so the output must equal x")


# --- 07.3 -------------------------------------------------------------------------------------

SETTINGS = [("lr", (0.003, 0.01, 0.03), "epochs", (5, 15)),
            ("dropout", (0.0, 0.25, 0.5), "weight_decay", (0.0, 1e-3)),
            ("batch_size", (5, 25, 50), "lr", (0.01, 0.1))]


def _runs():
    """Noisy sweep records over 6 settings x 3 seeds, with four settings that tell mistakes apart.

    Returns (runs, params, the right setting, by mistake: the setting a mistake would pick).
    """
    first, first_values, second, second_values = _RANDOM.choice(SETTINGS)
    points = [{first: a, second: b} for a in first_values for b in second_values]
    _RANDOM.shuffle(points)
    right, single, by_test, worst = points[:4]  # four different settings
    val = {i: _RANDOM.uniform(0.70, 0.80) for i in range(len(points))}
    val[0], val[1], val[3] = 0.86, 0.76, 0.55   # best mean; a lucky run (below); the lowest
    runs = []
    for i, point in enumerate(points):
        offsets = [-0.02, 0.0, 0.02] if i != 1 else [-0.1, -0.05, 0.15]  # one run at 0.91
        _RANDOM.shuffle(offsets)
        for seed, offset in enumerate(offsets):
            test = 0.95 if i == 2 else _RANDOM.uniform(0.6, 0.85)
            runs.append({**point, "seed": seed, "val_acc": val[i] + offset,
                         "val_loss": 1.5 - val[i] - offset, "test_acc": test,
                         "test_loss": 1.5 - test, "seconds": _RANDOM.uniform(1, 3)})
    return runs, [first, second], right, {"the best single run": single,
                                          "the best test accuracy": by_test,
                                          "the lowest validation accuracy": worst}


def _check_choose(choose) -> None:
    _RANDOM.seed(63)
    runs, params, right, mistakes = _runs()
    copies = [dict(r) for r in runs]
    answer = choose(copies, list(params))
    expect(isinstance(answer, tuple) and len(answer) == 2 and isinstance(answer[0], dict),
           "return a pair (setting, test_acc): a dict of the chosen hyper-parameters and a number")
    setting, test_acc = answer
    expect(set(setting) == set(params), f"the setting must have exactly the keys {params} "
                                        f"(the names in params), got {sorted(setting)}")
    for mistake, wrong in mistakes.items():
        expect(setting != wrong, f"you chose the setting with {mistake} ({setting}): choose the "
                                 "setting whose validation accuracy, averaged over its seeds, "
                                 "is highest")
    expect(setting == right, f"{setting} is not the setting with the highest mean validation "
                             "accuracy over its seeds")
    chosen = [r for r in runs if all(r[k] == right[k] for k in params)]
    expect(isinstance(test_acc, (int, float)) and math.isclose(
        test_acc, sum(r["test_acc"] for r in chosen) / len(chosen), rel_tol=1e-9),
        "the test accuracy returned must be the mean test_acc of the chosen setting's runs")


EXERCISES: list[Exercise] = [
    Exercise("07.1", "The L2-SP penalty",
             hint="the squared distance to the starting weights, summed and scaled by strength / "
                  "2, over the trainable parameters that have a starting point of the same shape",
             test=_check_l2sp),
    Exercise("07.2", "Inverted dropout",
             hint="drop each unit with probability p and rescale the survivors so that the "
                  "expected value is unchanged; outside training, change nothing",
             test=_check_dropout),
    Exercise("07.3", "Choose on validation, report on test",
             hint="average each setting's runs over the seeds first; let validation alone choose,"
                  " and only report the test score",
             test=_check_choose),
]
