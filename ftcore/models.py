"""``SmallCNN``: a classifier with a named body (``features``) and a named ``head``.

Like torchvision's classifiers, the parts have names, so fine-tuning code reads
``model.head`` and ``model.features.conv1`` rather than ``model[-1]``::

    input (N, 1, 28, 28)
    features.conv1  Conv 3x3 -> BatchNorm -> ReLU -> MaxPool   (N, width, 14, 14)
    features.conv2  Conv 3x3 -> BatchNorm -> ReLU -> MaxPool   (N, 2*width, 7, 7)
    features.fc     Flatten -> Linear -> ReLU -> Dropout        (N, hidden)
    head            Linear                                      (N, num_classes)
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .checks import ParameterError, check_int, check_number, check_pixels
from .nn import Dropout


@dataclass(frozen=True)
class CNNConfig:
    """Everything that decides the shape of a :class:`SmallCNN` (saved in checkpoints)."""

    num_classes: int = 10
    width: int = 16
    hidden: int = 128
    dropout: float = 0.25
    batch_norm: bool = True


class SmallCNN(nn.Module):
    """A small convolutional classifier for 28x28 grey images.

    Args:
        num_classes: outputs of the head.
        width: channels of the first convolution (the second has twice as many).
        hidden: features the body hands to the head.
        dropout: probability of :class:`ftcore.nn.Dropout` before the head.
        batch_norm: use BatchNorm after each convolution.

    ``forward`` takes (N, 1, 28, 28) floats in [0, 1] and returns logits (N, num_classes).
    """

    def __init__(self, num_classes: int = 10, width: int = 16, hidden: int = 128,
                 dropout: float = 0.25, batch_norm: bool = True) -> None:
        super().__init__()
        num_classes, width, hidden = (check_int(v, name, low=1) for name, v in (
            ("num_classes", num_classes), ("width", width), ("hidden", hidden)))
        dropout = check_number(dropout, "dropout p", low=0, high=1, high_open=True)
        if not isinstance(batch_norm, bool):
            raise ParameterError(f"batch_norm={batch_norm!r} must be True or False")
        self.config = CNNConfig(num_classes, width, hidden, dropout, batch_norm)

        def conv_block(c_in: int, c_out: int) -> nn.Sequential:
            norm = nn.BatchNorm2d(c_out) if batch_norm else nn.Identity()
            return nn.Sequential(OrderedDict(conv=nn.Conv2d(c_in, c_out, 3, padding=1),
                                             norm=norm, relu=nn.ReLU(), pool=nn.MaxPool2d(2)))

        self.features = nn.Sequential(OrderedDict(
            conv1=conv_block(1, width),
            conv2=conv_block(width, 2 * width),
            fc=nn.Sequential(OrderedDict(flatten=nn.Flatten(),
                                         linear=nn.Linear(2 * width * 7 * 7, hidden),
                                         relu=nn.ReLU(), dropout=Dropout(dropout))),
        ))
        self.head = nn.Linear(hidden, num_classes)
        # Speed, not maths: the convolution weights are stored channels-last (NHWC) and
        # ``forward`` hands the convolutions channels-last images. PyTorch's CPU kernels
        # (oneDNN) run this layout about 1.5x faster for training and 2x for inference here;
        # every value and shape is the same, only the order in memory differs (results may
        # differ in the last bits, as with any other kernel).
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, type(self).__name__)
        return self.head(self.features(x.contiguous(memory_format=torch.channels_last)))


def check_images(x: torch.Tensor, model: str = "SmallCNN") -> None:
    """Raise ``ValueError`` unless ``x`` is a float batch (N, 1, 28, 28) with finite values in
    [0, 1] (:func:`ftcore.checks.check_pixels`)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        hint = " (add a channel axis: x.unsqueeze(1))" if getattr(x, "ndim", 0) == 3 else ""
        raise ParameterError(f"{model} expects images of shape (N, 1, 28, 28), got "
                             f"{shape}{hint}")
    check_pixels(x, model)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters (only those with ``requires_grad`` if asked)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def config_dict(model: SmallCNN) -> dict:
    """The model's :class:`CNNConfig` as a plain dict (what checkpoints store)."""
    return asdict(model.config)


class MLP(nn.Module):
    """A fully connected classifier for 28x28 grey images, with the same named parts as
    :class:`SmallCNN` (``features`` and ``head``), so surgery and continual-learning code
    treat both alike. The classic model for permuted MNIST, where pixel order carries no
    meaning, so convolutions have nothing to exploit::

        input (N, 1, 28, 28)
        features.flatten                                (N, 784)
        features.fc1 .. fcK  Linear -> ReLU -> Dropout  (N, hidden[k])
        head                 Linear                     (N, num_classes)

    Args:
        num_classes: outputs of the head.
        hidden: the width of each hidden layer, e.g. ``(100, 100)`` for two layers.
        dropout: probability of :class:`ftcore.nn.Dropout` after each hidden layer.
    """

    def __init__(self, num_classes: int = 10, hidden: tuple[int, ...] = (100, 100),
                 dropout: float = 0.0) -> None:
        super().__init__()
        check_int(num_classes, "num_classes", low=1)
        if isinstance(hidden, int) or not hasattr(hidden, "__iter__"):
            raise ParameterError(f"hidden={hidden!r} must be a tuple of layer widths, e.g. "
                                 f"hidden=({hidden!r},)")
        hidden = tuple(check_int(h, "a width in hidden", low=1) for h in hidden)
        if not hidden:
            raise ValueError("hidden=() needs at least one layer width, e.g. hidden=(100,)")
        layers, width = [("flatten", nn.Flatten())], 28 * 28
        for k, h in enumerate(hidden, start=1):
            layers.append((f"fc{k}", nn.Sequential(OrderedDict(
                linear=nn.Linear(width, h), relu=nn.ReLU(), dropout=Dropout(dropout)))))
            width = h
        self.features = nn.Sequential(OrderedDict(layers))
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, type(self).__name__)
        return self.head(self.features(x))


# --- counting the cost of a training step -----------------------------------------------------

def layer_macs(model: nn.Module, x: torch.Tensor) -> list[dict]:
    """Multiply-accumulates of one training step, per ``nn.Conv2d`` and ``nn.Linear`` layer, per
    example of the batch ``x`` (N, ...), in forward order.

    Each row is ``{"name", "forward", "weight_grad", "input_grad"}``. A layer's forward pass
    costs ``forward`` MACs; its backward pass costs as much again for the gradient of its weight
    (only if the weight is trainable) and as much again for the gradient of its input (only if
    that input needs one, i.e. some trainable parameter lies below the layer: autograd skips
    the rest). So a frozen prefix costs no weight gradients and, below the first trainable
    layer, no input gradients either. Biases, norms and activations (a few per output) are not
    counted. The model runs once on ``x`` (in its current mode, with gradients recorded).
    """
    if not isinstance(x, torch.Tensor) or x.dim() < 2 or len(x) < 1:
        raise ValueError(f"x must be a batch of inputs (N, ...) with N >= 1, e.g. "
                         f"images[:1], got {getattr(x, 'shape', type(x).__name__)}")
    rows, hooks = [], []

    def record(name):
        def hook(module, inputs, output):
            if isinstance(module, nn.Conv2d):
                per_output = module.in_channels // module.groups * math.prod(module.kernel_size)
            else:
                per_output = module.in_features
            macs = output[0].numel() * per_output  # one example
            rows.append({"name": name, "forward": macs,
                         "weight_grad": macs if module.weight.requires_grad else 0,
                         "input_grad": macs if inputs[0].requires_grad else 0})
        return hook

    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            hooks.append(module.register_forward_hook(record(name)))
    try:
        with torch.enable_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return rows


def backward_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of the backward pass per example: the sum of ``weight_grad`` and
    ``input_grad`` over :func:`layer_macs` (0 when nothing is trainable)."""
    return sum(r["weight_grad"] + r["input_grad"] for r in layer_macs(model, x))
