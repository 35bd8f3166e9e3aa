"""ftcore.nn.Dropout: inverted dropout keeps the expected value, drops a share p of the units,
masks the gradient with the same mask, and behaves like torch.nn.Dropout (statistically)."""

from __future__ import annotations

import math

import pytest
import torch

from ftcore.nn import Dropout

# Tolerances below are 6 standard errors of the estimate: a correct implementation fails
# with probability ~1e-9 per check, whatever the seed.
Z = 6.0


def draws(module: torch.nn.Module, x: torch.Tensor, n: int) -> torch.Tensor:
    """n independent dropout outputs for x, stacked on a new first axis: (n, *x.shape)."""
    return module(x.expand(n, *x.shape).contiguous())


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_keeps_the_expected_value(p, seeded):
    x = torch.linspace(0.5, 2.0, 40)
    n = 20_000
    mean = draws(Dropout(p), x, n).mean(dim=0)
    # Each output is x / (1 - p) with probability 1 - p, else 0: variance x^2 p / (1 - p).
    standard_error = x * math.sqrt(p / (1 - p) / n)
    assert ((mean - x).abs() <= Z * standard_error).all()


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_drops_a_share_p_of_the_units(p, seeded):
    y = Dropout(p)(torch.ones(1_000_000))
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - p) <= Z * math.sqrt(p * (1 - p) / 1_000_000)
    # The kept units are scaled by exactly 1 / (1 - p).
    kept = y[y != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / (1 - p)))


def test_identity_in_eval_mode(seeded):
    x = torch.rand(8, 3, 5, 5)
    dropout = Dropout(0.5).eval()
    assert torch.equal(dropout(x), x)


def test_p_zero_is_the_identity_in_training(seeded):
    x = torch.rand(8, 3, 5, 5)
    dropout = Dropout(0.0).train()
    assert torch.equal(dropout(x), x)


@pytest.mark.parametrize("p", [0.3, 0.75])
def test_gradient_uses_the_same_mask(p, seeded):
    x = (torch.rand(64, 32) + 0.1).requires_grad_()  # no zeros: a zero output means dropped
    y = Dropout(p)(x)
    upstream = torch.randn_like(y)
    y.backward(upstream)
    dropped = y.detach() == 0
    assert 0 < dropped.float().mean() < 1
    assert torch.equal(x.grad[dropped], torch.zeros_like(x.grad[dropped]))  # exactly 0
    scale = 1 / (1 - p)
    assert torch.allclose(x.grad[~dropped], upstream[~dropped] * scale)
    assert torch.allclose(y.detach()[~dropped], x.detach()[~dropped] * scale)

    x.grad = None
    y = Dropout(p)(x)
    y.sum().backward()  # with a gradient of ones: exactly 0 where dropped, 1 / (1 - p) elsewhere
    dropped = y.detach() == 0
    assert (x.grad[dropped] == 0).all()
    assert torch.allclose(x.grad[~dropped], torch.full_like(x.grad[~dropped], scale))


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_statistically_like_torch_dropout(p, seeded):
    x = torch.linspace(0.5, 2.0, 10)
    n = 50_000
    ours = draws(Dropout(p), x, n)
    theirs = draws(torch.nn.Dropout(p), x, n)
    # Same mean (x) and the same variance (x^2 p / (1 - p)) for every unit.
    variance = x ** 2 * p / (1 - p)
    for y in (ours, theirs):
        assert ((y.mean(dim=0) - x).abs() <= Z * (variance / n).sqrt()).all()
        # The sample variance has relative standard error sqrt((kurtosis - 1) / n), and a
        # scaled Bernoulli variable has kurtosis 1 / (p (1 - p)).
        relative = math.sqrt((1 / (p * (1 - p)) - 1) / n)
        assert ((y.var(dim=0) / variance - 1).abs() <= Z * relative).all()
    # The same kept values (x / (1 - p)) and the same share of zeros, within sampling error.
    assert torch.allclose(ours[ours != 0].unique(), theirs[theirs != 0].unique())
    share = Z * math.sqrt(2 * p * (1 - p) / ours.numel())
    assert abs((ours == 0).float().mean() - (theirs == 0).float().mean()) <= share


def test_independent_masks_and_any_shape(seeded):
    x = torch.ones(4, 2, 6, 6)
    y = Dropout(0.5)(x)
    assert y.shape == x.shape
    assert not torch.equal(y[0], y[1])  # each element has its own draw


def test_generator_makes_masks_reproducible():
    x = torch.ones(1000)
    a = Dropout(0.5, generator=torch.Generator().manual_seed(7))(x)
    b = Dropout(0.5, generator=torch.Generator().manual_seed(7))(x)
    c = Dropout(0.5, generator=torch.Generator().manual_seed(8))(x)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_global_seed_makes_masks_reproducible():
    x = torch.ones(1000)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        a = Dropout(0.5)(x)
        torch.manual_seed(3)
        b = Dropout(0.5)(x)
    assert torch.equal(a, b)


@pytest.mark.parametrize("p", [1.0, 1.5, -0.1, float("nan")])
def test_p_outside_range_raises(p):
    with pytest.raises(ValueError, match=rf"p={p!r}.*\[0, 1\)"):
        Dropout(p)
