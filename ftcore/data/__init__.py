"""Data: MNIST (bundled subset or full), UCI digits and Fashion-MNIST as :class:`ImageSet`
splits, plus the subsets and loaders that fine-tuning experiments need.

>>> from ftcore.data import load_dataset
>>> train, val, test = load_dataset("mnist")          # offline, seconds
>>> train.images.shape, train.labels.dtype
(torch.Size([3500, 1, 28, 28]), torch.int64)
"""

from __future__ import annotations

import torch

from ..checks import check_type
from .cache import CorruptFileError, data_root
from .images import ImageSet
from .loaders import make_loader
from .sources import SOURCES, DataUnavailableError, mnist_style
from .sources import load_raw as _load_raw
from .splits import (
    Splits,
    check_seed,
    keep_classes,
    merge_classes,
    per_class,
    split_positions,
    stratified_split,
)

#: Held-out shares for sources that come as one pool (the bundled MNIST subset, UCI digits).
TEST_FRACTION = 0.2
VAL_FRACTION = 0.1
#: Validation examples taken from the official training set of the full data sets.
FULL_VAL_SIZE = 5000


def load_dataset(name: str = "mnist", *, root=None, download: bool = False,
                 seed: int = 0) -> Splits:
    """Stratified train / validation / test splits of one data source.

    Args:
        name: ``"mnist"`` (bundled 5,000-image subset: 3,500 / 500 / 1,000),
            ``"mnist-full"`` (55,000 / 5,000 / 10,000), ``"uci-digits"``
            (1,257 / 180 / 360 of 1,797) or ``"fashion-mnist"`` (55,000 / 5,000 / 10,000).
        root: data folder; default :func:`data_root`.
        download: allow torchvision to download ``mnist-full`` / ``fashion-mnist``.
        seed: reshuffles which examples go to train and validation. The test split never
            depends on it, so a test score is always measured on the same images.

    Images are float32 (N, 1, 28, 28) in [0, 1]; labels int64 (N,).
    """
    seed = check_seed(seed)  # before any work: a bad seed should not cost a data load
    check_type(download, "download", bool)
    (x, y, x_test, y_test), classes = _load_raw(name, root, download)

    def as_set(images: torch.Tensor, labels: torch.Tensor) -> ImageSet:
        return ImageSet(images.unsqueeze(1).float().div_(255), labels.long(), classes, name)

    # Split the uint8 pixels first and convert each part once: a quarter of the memory.
    if x_test is None:  # one pool: hold out a fixed test split first
        rest, held = split_positions(y, TEST_FRACTION, seed=0)
        x, y, x_test, y_test = x[rest], y[rest], x[held], y[held]
        val_share = VAL_FRACTION / (1 - TEST_FRACTION)
    else:
        val_share = FULL_VAL_SIZE
    train, val = split_positions(y, val_share, seed=seed)
    return Splits(as_set(x[train], y[train]), as_set(x[val], y[val]), as_set(x_test, y_test))


__all__ = ["SOURCES", "CorruptFileError", "DataUnavailableError", "ImageSet", "Splits",
           "data_root", "keep_classes", "load_dataset", "make_loader", "merge_classes",
           "mnist_style", "per_class", "split_positions", "stratified_split"]
