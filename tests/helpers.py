"""Small things several test files need (pytest puts ``tests/`` on ``sys.path``)."""

from __future__ import annotations

import torch

from ftcore.models import SmallCNN

#: SmallCNN's body blocks, input to output.
BODY_BLOCKS = ["features.conv1", "features.conv2", "features.fc"]


def tiny_cnn(num_classes: int = 10, seed: int = 0, **kwargs) -> SmallCNN:
    """A tiny SmallCNN (width 4, hidden 16) with reproducible initial weights; the global RNG is
    left alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SmallCNN(num_classes, **{"width": 4, "hidden": 16, **kwargs})
