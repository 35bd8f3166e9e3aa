"""ftcore.models: SmallCNN's shapes and named parts, its input checks, count_parameters."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ftcore.models import SmallCNN, count_parameters
from ftcore.nn import Dropout


def test_output_and_block_shapes(seeded):
    model = SmallCNN(num_classes=3, width=4, hidden=16).eval()
    x = torch.rand(5, 1, 28, 28)
    assert model(x).shape == (5, 3)
    h = model.features.conv1(x)
    assert h.shape == (5, 4, 14, 14)
    h = model.features.conv2(h)
    assert h.shape == (5, 8, 7, 7)
    h = model.features.fc(h)
    assert h.shape == (5, 16)
    assert torch.allclose(model.head(h), model(x))  # forward is features then head


def test_channels_last_is_a_layout_not_a_different_model(seeded, tmp_path):
    """The convolution weights are stored channels-last (for speed) and stay so through a copy
    and a checkpoint saved in either layout; the logits are those of the same weights in the
    ordinary layout, to float precision (another kernel, not another model)."""
    model = SmallCNN(num_classes=3, width=4, hidden=16).eval()
    convs = [model.features.conv1.conv.weight, model.features.conv2.conv.weight]
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert not convs[1].is_contiguous()  # really another layout (conv1's C=1 is both)
    plain = {k: v.contiguous() for k, v in model.state_dict().items()}
    torch.save(plain, tmp_path / "plain.pt")
    loaded = SmallCNN(num_classes=3, width=4, hidden=16).eval()
    loaded.load_state_dict(torch.load(tmp_path / "plain.pt", weights_only=True))
    copied = copy.deepcopy(loaded)
    for other in (loaded, copied):
        assert other.features.conv2.conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(6, 1, 28, 28)
    with torch.no_grad():
        h = x
        for block in (model.features.conv1, model.features.conv2):  # the NCHW reference
            conv, norm = block.conv, block.norm
            h = F.conv2d(h, conv.weight.contiguous(), conv.bias, padding=1)
            h = F.max_pool2d(F.relu(F.batch_norm(h, norm.running_mean, norm.running_var,
                                                 norm.weight, norm.bias)), 2)
        reference = model.head(model.features.fc(h))
        assert torch.allclose(copied(x), reference, atol=1e-5)
        assert torch.equal(copied(x), model(x))  # the same weights, the same kernel


def test_named_parts():
    model = SmallCNN(num_classes=7, width=4, hidden=16)
    assert [name for name, _ in model.named_children()] == ["features", "head"]
    assert [name for name, _ in model.features.named_children()] == ["conv1", "conv2", "fc"]
    assert isinstance(model.head, nn.Linear)
    assert (model.head.in_features, model.head.out_features) == (16, 7)
    assert isinstance(model.features.conv1.conv, nn.Conv2d)
    assert isinstance(model.features.conv1.norm, nn.BatchNorm2d)
    assert isinstance(model.features.fc.dropout, Dropout)
    assert model.features.fc.dropout.p == 0.25


def test_without_batch_norm_or_dropout():
    model = SmallCNN(width=4, hidden=16, dropout=0.0, batch_norm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert model.features.fc.dropout.p == 0.0
    model.train()
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(model(x), model(x))  # no randomness left in training mode


def test_count_parameters():
    w, hidden, classes = 4, 16, 10
    model = SmallCNN(num_classes=classes, width=w, hidden=hidden)
    by_hand = ((1 * 3 * 3 * w + w) + 2 * w  # conv1 and its BatchNorm (scale, shift)
               + (w * 3 * 3 * 2 * w + 2 * w) + 2 * 2 * w  # conv2 and its BatchNorm
               + (2 * w * 7 * 7 * hidden + hidden)  # fc
               + (hidden * classes + classes))  # head
    assert count_parameters(model) == by_hand
    model.features.requires_grad_(False)
    assert count_parameters(model) == by_hand
    assert count_parameters(model, trainable_only=True) == hidden * classes + classes
    assert count_parameters(nn.Linear(3, 2)) == 8


@pytest.mark.parametrize(("shape", "hint"), [
    ((2, 28, 28), r"unsqueeze\(1\)"),
    ((2, 3, 28, 28), r"\(N, 1, 28, 28\), got \(2, 3, 28, 28\)"),
    ((2, 1, 32, 32), r"got \(2, 1, 32, 32\)"),
    ((784,), r"got \(784,\)"),
])
def test_wrong_image_shape_raises(shape, hint):
    with pytest.raises(ValueError, match=hint):
        SmallCNN(width=2, hidden=4)(torch.rand(shape))


def test_wrong_pixel_range_raises():
    model = SmallCNN(width=2, hidden=4)
    pixels = torch.zeros(2, 1, 28, 28)
    pixels[0, 0, 10, 10] = 255.0  # raw 0..255 pixels as floats
    with pytest.raises(ValueError, match=r"\[0, 1\], got 0 to 255.*divide uint8 pixels by 255"):
        model(pixels)
    with pytest.raises(ValueError, match="got torch.uint8: divide by 255"):
        model(pixels.to(torch.uint8))
    normalised = (torch.rand(2, 1, 28, 28) - 0.1307) / 0.3081  # the classic MNIST normalisation
    with pytest.raises(ValueError, match="do not normalise"):
        model(normalised)


@pytest.mark.parametrize("kwargs", [{"num_classes": 0}, {"width": 0}, {"hidden": 2.5}])
def test_bad_configuration_raises(kwargs):
    name, value = next(iter(kwargs.items()))
    with pytest.raises(ValueError, match=f"{name}={value!r}"):
        SmallCNN(**kwargs)


def test_mlp_input_errors_name_the_mlp():
    from ftcore.models import MLP

    with pytest.raises(ValueError, match=r"^MLP expects pixel values in \[0, 1\]"):
        MLP()(torch.full((2, 1, 28, 28), 255.0))
