"""ftcore.lr_find: the range test sweeps the rates it says, smooths as it says, stops at the
blow-up, suggests a rate that is right where the right rate is known (a quadratic: below 2/L)
and that trains a small CNN better than 100x less or more, over seeds; the caller's model and
random state are untouched; bad arguments are refused first."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from helpers import tiny_cnn
from torch import nn

from ftcore.checks import ParameterError
from ftcore.data import ImageSet
from ftcore.lr_find import LRFind, lr_find, rates, steepest_index
from ftcore.optim import SGD
from ftcore.surgery import freeze, unfreeze
from ftcore.train import fit

SEEDS = range(5)


def linear(seed: int, num_classes: int = 10) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, num_classes))


def squared_error(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Least squares against one-hot targets: a quadratic in a linear model's weights."""
    return F.mse_loss(logits, F.one_hot(labels, logits.shape[1]).float())


def smoothness(data: ImageSet, num_classes: int = 10) -> float:
    """L, the largest eigenvalue of the Hessian of ``squared_error`` for a linear model on the
    whole of ``data``: with X the images as rows plus a column of ones (the bias),
    loss = ||X W - T||^2 / (N C), so the Hessian is (2 / C) X^T X / N for every output."""
    x = torch.cat([data.images.flatten(1), torch.ones(len(data), 1)], dim=1).double()
    return 2 / num_classes * torch.linalg.eigvalsh(x.T @ x / len(data)).max().item()


# --- the sweep --------------------------------------------------------------------------------

def test_rates_are_geometric_and_the_average_is_bias_corrected(mnist_small):
    train, _ = mnist_small
    result = lr_find(tiny_cnn(), train, start=1e-4, end=1e-2, steps=9, batch_size=50,
                     smoothing=0.9)
    assert isinstance(result, LRFind) and len(result) == 9 and not result.stopped_early
    assert result.lrs == pytest.approx([1e-4 * 10 ** (i / 4) for i in range(9)])
    assert rates(1e-4, 1e-2, 9) == result.lrs
    average = 0.0
    for i, (loss, smoothed) in enumerate(zip(result.losses, result.smoothed, strict=True)):
        average = 0.9 * average + 0.1 * loss
        assert smoothed == pytest.approx(average / (1 - 0.9 ** (i + 1)))
    assert result.smoothed[0] == pytest.approx(result.losses[0])  # no pull towards 0
    assert result.suggestion == result.min_over_10 == result.min_rate / 10
    assert result.min_rate == result.lrs[result.smoothed.index(min(result.smoothed))]
    assert result.rule.startswith("min / 10")
    if result.min_rate == result.lrs[-1]:  # a range that ends too early says so
        assert "still falling at the last rate" in result.rule


def test_steps_beyond_one_epoch_cycle_through_the_data():
    images = torch.rand(20, 1, 28, 28)
    train = ImageSet(images, torch.arange(20) % 2, ("a", "b"), "tiny")
    result = lr_find(tiny_cnn(2), train, start=1e-5, end=1e-4, steps=7, batch_size=10)
    assert len(result) == 7 and all(math.isfinite(v) for v in result.losses)  # 3.5 epochs


def test_it_stops_when_the_smoothed_loss_blows_up(mnist_small):
    train, _ = mnist_small
    result = lr_find(tiny_cnn(), train, start=1e-3, end=1e3, steps=60, batch_size=32)
    assert result.stopped_early and len(result) < 60
    before, last = result.smoothed[:-1], result.smoothed[-1]
    assert not math.isfinite(last) or last > 4 * min(before)  # the stopping rule
    assert all(s <= 4 * min(before[:i + 1]) for i, s in enumerate(before))  # not earlier


def test_steepest_index_reads_the_slope_before_the_minimum():
    lrs = [10.0 ** k for k in range(6)]
    assert steepest_index(lrs, [5.0, 4.0, 2.0, 1.5, 1.4, 9.0]) == 1  # (2 - 5) / 2 decades
    assert steepest_index(lrs, [5.0, 4.0, 2.0, 1.5, 1.4, 9.0], skip=2) == 2
    assert steepest_index(lrs, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]) is None  # never fell


# --- where the right rate is known ------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_on_least_squares_gd_stops_above_2_over_L_and_suggests_below_it(mnist_small, seed):
    """Full-batch gradient descent on a quadratic lowers the loss at every step while
    lr < 2 / L and blows it up in the top eigendirection above that: the test must stop only
    beyond 2 / L, and suggest a rate below it, within a factor 20 of it."""
    train, _ = mnist_small
    limit = 2 / smoothness(train)  # 0.25 here
    result = lr_find(linear(seed), train, start=1e-4, end=100.0, steps=100,
                     batch_size=len(train), momentum=0.0, loss=squared_error, seed=seed)
    assert result.stopped_early and result.lrs[-1] > limit
    assert limit / 20 < result.suggestion < limit
    # With momentum beta, gradient descent stays stable up to 2 (1 + beta) / L.
    heavy = lr_find(linear(seed), train, start=1e-4, end=100.0, steps=100,
                    batch_size=len(train), momentum=0.9, loss=squared_error, seed=seed)
    assert heavy.stopped_early and heavy.lrs[-1] > 2 * 1.9 / smoothness(train)
    assert heavy.suggestion < 2 * 1.9 / smoothness(train) / 2


def test_on_a_small_cnn_the_suggestion_beats_100x_smaller_and_100x_larger(mnist_small):
    """The same 21 SGD steps at the suggested rate, at 1/100 of it and at 100 times it, for
    five seeds (a new network and batch order each): the suggestion wins every time, on both
    training loss and validation accuracy (it reached 0.39-0.66, the others at most 0.15;
    chance is 0.1)."""
    train, val = mnist_small
    for seed in SEEDS:
        result = lr_find(tiny_cnn(seed=seed), train, start=1e-4, end=10.0, steps=40,
                         batch_size=32, seed=seed)
        runs = {}
        for factor in (0.01, 1, 100):
            history = fit(tiny_cnn(seed=seed), train, val, epochs=3, batch_size=32, seed=seed,
                          lr=result.suggestion * factor, on_divergence="continue",
                          progress=False, device="cpu")
            runs[factor] = history.last
        others = [runs[0.01], runs[100]]
        assert all(runs[1]["val_acc"] > r["val_acc"] + 0.1 for r in others), (seed, runs)
        assert all(runs[1]["train_loss"] < r["train_loss"] for r in others), (seed, runs)


# --- what it leaves alone ---------------------------------------------------------------------

def test_the_callers_model_flags_and_random_state_are_untouched(mnist_small):
    train, _ = mnist_small
    model = tiny_cnn()  # with BatchNorm: running statistics are buffers
    freeze(model, "features.conv1")
    model.train()
    state = copy.deepcopy(model.state_dict())
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    rng = torch.get_rng_state()
    lr_find(model, train, steps=20, end=1e-1)
    assert torch.equal(torch.get_rng_state(), rng)
    after = model.state_dict()
    assert all(torch.equal(state[k], after[k]) for k in state)  # parameters and buffers
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert model.training


def test_only_trainable_parameters_are_stepped_and_groups_keep_their_ratios(mnist_small):
    train, _ = mnist_small
    model = tiny_cnn()
    freeze(model)
    unfreeze(model, "head", "features.fc")
    built = {}

    def make(params, lr):  # params in registration order: features.fc's, then the head's
        built["params"] = params
        built["optimizer"] = SGD([{"params": params[-2:]},
                                  {"params": params[:-2], "lr": lr / 10}], lr=lr)
        return built["optimizer"]

    result = lr_find(model, train, steps=10, end=1e-2, make_optimizer=make)
    expected = sum(p.numel() for p in [*model.head.parameters(),
                                       *model.features.fc.parameters()])
    assert sum(p.numel() for p in built["params"]) == expected  # the frozen convs not given
    groups = built["optimizer"].param_groups
    assert groups[0]["lr"] == pytest.approx(result.lrs[-1])
    assert groups[1]["lr"] == pytest.approx(result.lrs[-1] / 10)


def test_the_same_seed_gives_the_same_curve(mnist_small):
    train, _ = mnist_small
    a, b = (lr_find(tiny_cnn(), train, steps=10, seed=3) for _ in range(2))
    assert a.losses == b.losses and a.suggestion == b.suggestion
    assert lr_find(tiny_cnn(), train, steps=10, seed=4).losses != a.losses


# --- refused before any work ------------------------------------------------------------------

@pytest.mark.parametrize("options, message", [
    ({"start": 0}, r"start=0 must be a finite number > 0"),
    ({"start": 1e-3, "end": 1e-3}, r"end=0.001 must be a finite number > 0.001; the last rate"),
    ({"end": float("nan")}, r"end=nan must be a finite number"),
    ({"steps": 4}, r"steps=4 must be a whole number >= 5"),
    ({"steps": 10.0}, r"steps=10.0 must be a whole number"),
    ({"batch_size": 0}, r"batch_size=0 must be a whole number >= 1"),
    ({"momentum": 1.0}, r"momentum=1.0 must be in \[0, 1\)"),
    ({"smoothing": 1}, r"smoothing=1 must be in \[0, 1\)"),
    ({"diverge": 1}, r"diverge=1 must be a finite number > 1"),
    ({"seed": -1}, r"seed=-1 must be a whole number >= 0"),
    ({"make_optimizer": "adam"}, r"make_optimizer='adam' must be a function \(params, lr\)"),
    ({"loss": "mse"}, r"loss='mse' must be a function \(logits, labels\)"),
])
def test_bad_arguments_are_refused_naming_the_value(mnist_small, options, message):
    with pytest.raises(ParameterError, match=message):
        lr_find(tiny_cnn(), mnist_small[0], **options)


def test_bad_models_and_data_are_refused(mnist_small):
    train, _ = mnist_small
    with pytest.raises(ParameterError, match="train must be an ImageSet"):
        lr_find(tiny_cnn(), train.images)
    with pytest.raises(ParameterError, match="no trainable parameters"):
        lr_find(freeze(tiny_cnn()), train)
    with pytest.raises(ValueError, match="labels up to 9 .* but the model outputs 3 classes"):
        lr_find(tiny_cnn(3), train)
    with pytest.raises(ParameterError, match=r"make_optimizer\(params, lr\) must be an "
                                             "Optimizer"):
        lr_find(tiny_cnn(), train, make_optimizer=lambda params, lr: params)
