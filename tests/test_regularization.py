"""ftcore.regularization: L2, L1 and L2-SP penalties for ``fit(..., penalty=...)``, and the
bad settings they refuse."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from ftcore import fit
from ftcore.models import SmallCNN
from ftcore.nn import Dropout
from ftcore.regularization import l1_penalty, l2_penalty, l2sp_penalty


def linear(weight, bias) -> nn.Linear:
    """An nn.Linear with the given weights (a layer whose penalty we can work out by hand)."""
    layer = nn.Linear(len(weight[0]), len(weight))
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
        layer.bias.copy_(torch.tensor(bias))
    return layer


def tiny_cnn(num_classes: int = 10, seed: int = 0) -> SmallCNN:
    torch.manual_seed(seed)
    return SmallCNN(num_classes, width=2, hidden=8, dropout=0.0)


def test_l2_is_half_the_strength_times_the_squared_weights():
    layer = linear([[1.0, -2.0]], [3.0])
    assert l2_penalty(0.1)(layer).item() == pytest.approx(0.1 / 2 * (1 + 4 + 9))


def test_l1_is_the_strength_times_the_absolute_weights():
    layer = linear([[1.0, -2.0]], [-3.0])
    assert l1_penalty(0.1)(layer).item() == pytest.approx(0.1 * (1 + 2 + 3))


def test_gradients_are_the_textbook_ones():
    layer = linear([[1.5, -2.0]], [0.0])
    l2_penalty(0.3)(layer).backward()
    assert torch.allclose(layer.weight.grad, 0.3 * layer.weight.detach())  # strength * w
    layer.zero_grad()
    l1_penalty(0.3)(layer).backward()
    assert torch.allclose(layer.weight.grad, 0.3 * layer.weight.detach().sign())


def test_frozen_parameters_are_not_penalised():
    layer = linear([[1.0, -2.0]], [3.0])
    layer.weight.requires_grad_(False)
    assert l2_penalty(2.0)(layer).item() == pytest.approx(9.0)  # only the bias: 2/2 * 3^2
    assert l1_penalty(2.0)(layer).item() == pytest.approx(6.0)


def test_zero_strength_is_zero():
    model = tiny_cnn()
    for penalty in (l2_penalty(0), l1_penalty(0.0), l2sp_penalty(0, tiny_cnn(seed=1))):
        assert penalty(model).item() == 0.0


def test_l2_penalty_in_fit_is_the_same_as_weight_decay(mnist_small):
    """The gradient of (strength / 2) ||w||^2 is strength * w: SGD's weight decay term."""
    train, _ = mnist_small
    with_penalty, with_decay = tiny_cnn(), tiny_cnn()
    fit(with_penalty, train, epochs=2, lr=0.05, momentum=0.9, penalty=l2_penalty(0.01))
    fit(with_decay, train, epochs=2, lr=0.05, momentum=0.9, weight_decay=0.01)
    plain = tiny_cnn()
    fit(plain, train, epochs=2, lr=0.05, momentum=0.9)
    for a, b in zip(with_penalty.parameters(), with_decay.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    moved = max((a - c).abs().max().item() for a, c in zip(with_penalty.parameters(),
                                                            plain.parameters(), strict=True))
    assert moved > 1e-4  # the penalty did change the run


def test_l2sp_is_zero_at_the_start_and_grows_with_the_distance():
    model = tiny_cnn()
    penalty = l2sp_penalty(0.5, model)
    assert penalty(model).item() == 0.0
    with torch.no_grad():
        model.head.bias += 2.0  # 10 entries moved by 2
    assert penalty(model).item() == pytest.approx(0.5 / 2 * 10 * 2.0 ** 2)


def test_l2sp_copies_the_reference_weights():
    """Passing the model itself is the usual call: later training must not move the target."""
    model = tiny_cnn()
    penalty = l2sp_penalty(1.0, model)
    with torch.no_grad():
        model.features.conv1.conv.weight.mul_(2)
    assert penalty(model).item() > 0


def test_l2sp_skips_a_new_head_of_another_shape():
    pretrained = tiny_cnn(num_classes=10)
    model = copy.deepcopy(pretrained)
    model.head = nn.Linear(8, 5)  # a new task with 5 classes: no starting point for the head
    penalty = l2sp_penalty(1.0, pretrained.state_dict())  # a state_dict works too
    assert penalty(model).item() == 0.0
    with torch.no_grad():
        model.head.weight += 1.0
        model.features.fc.linear.bias += 1.0  # 8 entries moved by 1
    assert penalty(model).item() == pytest.approx(1.0 / 2 * 8)


def test_l2sp_in_fit_keeps_the_weights_near_the_start(mnist_small):
    train, _ = mnist_small
    start = tiny_cnn()

    def distance(model):
        return math.sqrt(sum(((p - q) ** 2).sum().item() for p, q in
                             zip(model.parameters(), start.parameters(), strict=True)))

    free, anchored = copy.deepcopy(start), copy.deepcopy(start)
    fit(free, train, epochs=2, lr=0.05)
    fit(anchored, train, epochs=2, lr=0.05, penalty=l2sp_penalty(5.0, anchored))
    assert distance(anchored) < 0.5 * distance(free)


def test_l2sp_refuses_a_reference_of_another_architecture():
    penalty = l2sp_penalty(1.0, nn.Linear(3, 2))
    with pytest.raises(ValueError, match="no parameter of the model matches"):
        penalty(tiny_cnn())
    with pytest.raises(TypeError, match="model or a state_dict"):
        l2sp_penalty(1.0, [torch.zeros(3)])


@pytest.mark.parametrize("make", [l2_penalty, l1_penalty,
                                  lambda s: l2sp_penalty(s, nn.Linear(2, 2))])
@pytest.mark.parametrize("strength", [-0.1, -1, float("nan"), float("inf"), "0.1", True])
def test_bad_strengths_raise_naming_the_value(make, strength):
    with pytest.raises(ValueError, match=r"strength=.* must be a finite number >= 0"):
        make(strength)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_dropout_rate_outside_the_unit_interval_raises(p):
    """The dropout rates lesson 07 sweeps: both ftcore's layer and SmallCNN refuse p outside
    [0, 1) with a message naming the value."""
    with pytest.raises(ValueError, match=rf"p={p!r} must be in \[0, 1\)"):
        Dropout(p)
    with pytest.raises(ValueError, match=rf"p={p!r} must be in \[0, 1\)"):
        SmallCNN(dropout=p)
