"""Shared fixtures for ftcore's tests.

Every test gets its own empty data root (``FTCORE_DATA`` points into ``tmp_path``), so nothing a
test does can write into the repository's ``datasets/``. The exception is deliberate: the
session fixtures below read the real bundled MNIST subset from ``datasets/`` (building its cache
there once, as any user's first call would), and ``mnist_root`` copies that cache into a test's
own root so that code which loads "mnist" by itself (``pretrain``) runs without rebuilding it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

os.environ["FTCORE_PROGRESS"] = "0"  # before anything imports ftcore: no progress bars

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import ftcore  # noqa: E402
from ftcore.data import load_dataset, per_class  # noqa: E402

# Tests use tiny tensors: one thread is faster, and avoids oversubscribing the cores when other
# processes run at the same time (two threads made a small CNN ~15x slower under load).
# FTCORE_TEST_THREADS=2 runs them with two: the tests must pass with any thread count, since
# floating-point sums in other orders differ in the last bits (compare with a tolerance).
torch.set_num_threads(int(os.environ.get("FTCORE_TEST_THREADS", "1")))

#: The repository's real data folder (the default data root).
REPO_DATA = Path(ftcore.__file__).resolve().parents[1] / "datasets"


@pytest.fixture(autouse=True)
def data_root(tmp_path, monkeypatch) -> Path:
    """A fresh, empty data root for every test, via ``FTCORE_DATA``."""
    root = tmp_path / "data"
    monkeypatch.setenv("FTCORE_DATA", str(root))
    monkeypatch.setenv("FTCORE_PROGRESS", "0")
    return root


@pytest.fixture(autouse=True)
def close_figures():
    """Close every matplotlib figure a test opened."""
    yield
    plt.close("all")


@pytest.fixture(scope="session")
def repo_data() -> Path:
    """The repository's ``datasets/`` (read the bundled data from it, write nothing)."""
    return REPO_DATA


@pytest.fixture(scope="session")
def mnist():
    """The real bundled MNIST subset (train 3,500 / val 500 / test 1,000), seed 0."""
    return load_dataset("mnist", root=REPO_DATA, seed=0)


@pytest.fixture(scope="session")
def mnist_small(mnist):
    """20 real training images per digit (200) and 10 validation images per digit (100)."""
    return per_class(mnist.train, 20, seed=0), per_class(mnist.val, 10, seed=0)


@pytest.fixture
def mnist_root(mnist, data_root) -> Path:
    """The test's data root, holding a copy of the bundled subset's cache (not a link, so a
    test that damages it damages only its copy)."""
    cache = data_root / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO_DATA / "cache" / "mnist-subset.pt", cache / "mnist-subset.pt")
    return data_root


@pytest.fixture
def seeded():
    """Seed PyTorch's global generator for the test (the state is restored afterwards)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield
