"""Counting what a training step costs: models.layer_macs / backward_macs and
surgery.optimizer_state_size, on full, frozen and partly frozen models."""

from __future__ import annotations

import pytest
import torch

from ftcore import SGD, fit
from ftcore.data import ImageSet
from ftcore.models import MLP, SmallCNN, backward_macs, count_parameters, layer_macs
from ftcore.surgery import freeze, freeze_below, optimizer_state_size


def forward_macs_by_shape(width=4, hidden=16, classes=3):
    """The MACs per image of each SmallCNN layer, from the layer shapes."""
    return {"features.conv1.conv": 28 * 28 * width * 1 * 9,
            "features.conv2.conv": 14 * 14 * 2 * width * width * 9,
            "features.fc.linear": 2 * width * 7 * 7 * hidden,
            "head": hidden * classes}


def test_layer_macs_full_model():
    model = SmallCNN(num_classes=3, width=4, hidden=16)
    rows = layer_macs(model, torch.rand(2, 1, 28, 28))
    assert {r["name"]: r["forward"] for r in rows} == forward_macs_by_shape()
    assert all(r["weight_grad"] == r["forward"] for r in rows)
    # the images need no gradient, so the first layer computes none for its input
    assert [r["input_grad"] > 0 for r in rows] == [False, True, True, True]


def test_frozen_prefix_needs_no_gradients_below_the_first_trainable_layer():
    model = freeze_below(SmallCNN(num_classes=3, width=4, hidden=16), 2)
    rows = {r["name"]: r for r in layer_macs(model, torch.rand(1, 1, 28, 28))}
    shapes = forward_macs_by_shape()
    assert [rows[n]["weight_grad"] for n in shapes] == [0, 0, shapes["features.fc.linear"],
                                                        shapes["head"]]
    assert [rows[n]["input_grad"] for n in shapes] == [0, 0, 0, shapes["head"]]
    assert backward_macs(model, torch.rand(1, 1, 28, 28)) == (shapes["features.fc.linear"]
                                                               + 2 * shapes["head"])


@pytest.mark.filterwarnings("ignore:Full backward hook")
def test_the_count_agrees_with_what_autograd_computes():
    model = freeze_below(SmallCNN(num_classes=3, width=4, hidden=16), 1)
    x = torch.rand(2, 1, 28, 28)
    seen = {}
    conv2 = model.features.conv2.conv
    conv2.register_full_backward_hook(lambda m, gin, gout: seen.update(grad_in=gin[0]))
    model(x).sum().backward()
    row = next(r for r in layer_macs(model, x) if r["name"] == "features.conv2.conv")
    assert seen["grad_in"] is None and row["input_grad"] == 0  # nothing below conv2 trains
    assert model.features.conv1.conv.weight.grad is None and row["weight_grad"] == row["forward"]


def test_backward_macs_frozen_model_is_zero_and_mlp_counts():
    assert backward_macs(freeze(SmallCNN(width=2, hidden=4)), torch.rand(1, 1, 28, 28)) == 0
    rows = layer_macs(MLP(num_classes=10, hidden=(8,)), torch.rand(3, 1, 28, 28))
    assert [r["forward"] for r in rows] == [784 * 8, 8 * 10]


@pytest.mark.parametrize("bad", [torch.rand(28), "images"])
def test_layer_macs_rejects_non_batches(bad):
    with pytest.raises(ValueError, match="batch of inputs"):
        layer_macs(SmallCNN(width=2, hidden=4), bad)


def test_optimizer_state_size_counts_what_each_optimizer_keeps():
    torch.manual_seed(0)
    data = ImageSet(torch.rand(8, 1, 28, 28), torch.arange(8) % 3, ("a", "b", "c"), "toy")
    model = freeze_below(SmallCNN(num_classes=3, width=4, hidden=16), 2)
    trainable = [p for p in model.parameters() if p.requires_grad]
    sgd = SGD(trainable, lr=0.01, momentum=0.9)
    assert optimizer_state_size(sgd) == 0  # nothing before the first step
    fit(model, data, epochs=1, batch_size=8, optimizer=sgd, progress=False)
    assert optimizer_state_size(sgd) == count_parameters(model, trainable_only=True)
    adam = torch.optim.Adam(trainable, lr=1e-3)
    fit(model, data, epochs=1, batch_size=8, optimizer=adam, progress=False)
    # two moments per trained number, plus a one-number step count per tensor
    assert optimizer_state_size(adam) == 2 * count_parameters(model, trainable_only=True) \
        + len(trainable)


def test_optimizer_state_size_rejects_non_optimizers():
    with pytest.raises(ValueError, match="torch.optim.Optimizer"):
        optimizer_state_size([torch.zeros(3)])
