"""ftcore.data: sources, stratified splits, subsets, loaders, the data root and its caches."""

from __future__ import annotations

import gzip
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

import ftcore.data
from ftcore.data import (
    SOURCES,
    DataUnavailableError,
    ImageSet,
    data_root,
    keep_classes,
    load_dataset,
    make_loader,
    merge_classes,
    mnist_style,
    per_class,
    sources,
    stratified_split,
)
from ftcore.data import cache as cache_module
from ftcore.data.cache import atomic_save, safe_load

IDX_NAMES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
             "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}


# ---------------------------------------------------------------- helpers

def keys(images: torch.Tensor) -> list[bytes]:
    """One hashable key per image: its pixels as uint8 bytes (exact for x = uint8 / 255)."""
    pixels = (images * 255).round().to(torch.uint8).reshape(len(images), -1).numpy()
    return [row.tobytes() for row in pixels]


def indexed_set(counts=(100, 60, 40)) -> ImageSet:
    """A synthetic ImageSet whose image i carries its own index i in its first pixel (i / 256,
    exact in float32), with ``counts[c]`` examples of class c, classes interleaved."""
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    labels = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]
    images = torch.zeros(len(labels), 1, 28, 28)
    images[:, 0, 0, 0] = torch.arange(len(labels)) / 256
    return ImageSet(images, labels, tuple(f"class{c}" for c in range(len(counts))), "indexed")


def indices(data: ImageSet) -> torch.Tensor:
    """The original positions of the examples of a subset of :func:`indexed_set`."""
    return (data.images[:, 0, 0, 0] * 256).round().long()


def assert_stratified(part: ImageSet, whole_counts: torch.Tensor) -> None:
    """Every class has the same share in ``part`` as in the whole, up to rounding."""
    expected = whole_counts.double() * len(part) / whole_counts.sum()
    assert ((part.class_counts().double() - expected).abs() <= 1).all(), \
        (part.class_counts(), expected)


def fake_idx_data(n_train: int, n_test: int, seed: int = 0):
    """Random uint8 images (N, 28, 28) with balanced labels, as numpy arrays."""
    rng = np.random.default_rng(seed)
    data = {}
    for split, n in (("train", n_train), ("test", n_test)):
        data[f"{split}_images"] = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        data[f"{split}_labels"] = rng.permutation(np.arange(n) % 10).astype(np.uint8)
    return data


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    """Write a uint8 array in the IDX format of LeCun's MNIST files: a big-endian header
    (0, 0, type 0x08 = unsigned byte, number of dimensions), each dimension as a big-endian
    int32, then the raw bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        with gzip.open(path.with_name(path.name + ".gz"), "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def write_idx_set(folder: Path, data: dict, compress: bool = False) -> None:
    for key, name in IDX_NAMES.items():
        write_idx(folder / name, data[key], compress)


def assert_matches_files(splits, data: dict, classes) -> None:
    """``splits`` hold exactly the written pixels and labels, as floats in [0, 1]."""
    for part in splits:
        assert part.images.dtype == torch.float32 and part.labels.dtype == torch.int64
        assert part.images.shape[1:] == (1, 28, 28)
        assert 0 <= part.images.min() and part.images.max() <= 1
        assert part.classes == classes
    # The test split is the test file, in order.
    expected = torch.from_numpy(data["test_images"]).unsqueeze(1)
    assert torch.equal((splits.test.images * 255).round().to(torch.uint8), expected)
    assert splits.test.labels.tolist() == data["test_labels"].tolist()
    # Train and validation together are the train file, each image once, with its label.
    written = {row.tobytes(): int(label) for row, label in
               zip(data["train_images"].reshape(len(data["train_images"]), -1),
                   data["train_labels"], strict=True)}
    loaded = keys(splits.train.images) + keys(splits.val.images)
    assert sorted(loaded) == sorted(written)
    labels = splits.train.labels.tolist() + splits.val.labels.tolist()
    assert [written[k] for k in loaded] == labels


@pytest.fixture
def no_network(monkeypatch):
    """Fail any attempt to reach the network (name lookups and connections)."""
    def refuse(*args, **kwargs):
        raise OSError("network access is disabled in the tests")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture(scope="module")
def uci(tmp_path_factory):
    """UCI digits, built once into a temporary root."""
    return load_dataset("uci-digits", root=tmp_path_factory.mktemp("uci"))


# ---------------------------------------------------------------- the bundled MNIST subset

def test_bundled_mnist_sizes_and_format(mnist):
    assert [len(part) for part in mnist] == [3500, 500, 1000]
    for part in mnist:
        assert part.images.shape[1:] == (1, 28, 28)
        assert part.images.dtype == torch.float32 and part.labels.dtype == torch.int64
        assert 0 <= part.images.min() and part.images.max() <= 1
        assert part.classes == tuple("0123456789")


def test_bundled_mnist_splits_are_stratified(mnist):
    pool = sum(part.class_counts() for part in mnist)
    assert pool.tolist() == [500] * 10  # the subset has 500 images of every digit
    for part in mnist:
        assert_stratified(part, pool)


def test_bundled_mnist_splits_are_disjoint_and_cover_the_pool(mnist, repo_data):
    (x, y, _, _), _ = sources.load_raw("mnist", repo_data)
    pool = Counter(zip(keys(x.float().div(255)), y.tolist(), strict=True))
    loaded = Counter()
    for part in mnist:
        loaded.update(zip(keys(part.images), part.labels.tolist(), strict=True))
    assert loaded == pool  # every pool image in exactly one split, with its label
    train, val, test = (set(keys(part.images)) for part in mnist)
    assert not (train & val) and not (train & test) and not (val & test)


def test_split_reproducible_and_test_split_independent_of_seed(mnist, repo_data):
    again = load_dataset("mnist", root=repo_data, seed=0)
    for a, b in zip(mnist, again, strict=True):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    other = load_dataset("mnist", root=repo_data, seed=1)
    assert torch.equal(other.test.images, mnist.test.images)
    assert torch.equal(other.test.labels, mnist.test.labels)
    assert set(keys(other.val.images)) != set(keys(mnist.val.images))
    assert set(keys(other.train.images) + keys(other.val.images)) == \
        set(keys(mnist.train.images) + keys(mnist.val.images))


# ---------------------------------------------------------------- stratified_split

@pytest.mark.parametrize("fraction", [0.25, 30])
def test_stratified_split_is_disjoint_stratified_and_reproducible(fraction):
    data = indexed_set()
    rest, held = stratified_split(data, fraction, seed=3)
    assert len(held) == (30 if fraction == 30 else 50)
    both = torch.cat([indices(rest), indices(held)])
    assert sorted(both.tolist()) == list(range(len(data)))  # disjoint and complete
    assert torch.equal(data.labels[indices(held)], held.labels)  # labels travel with images
    for part in (rest, held):
        assert_stratified(part, data.class_counts())
    rest2, held2 = stratified_split(data, fraction, seed=3)
    assert torch.equal(indices(held2), indices(held))
    _, held_other = stratified_split(data, fraction, seed=4)
    assert set(indices(held_other).tolist()) != set(indices(held).tolist())


# ---------------------------------------------------------------- per_class, keep_classes

def test_per_class_keeps_n_of_every_class():
    data = indexed_set()
    subset = per_class(data, 25, seed=1)
    assert subset.class_counts().tolist() == [25, 25, 25]
    chosen = indices(subset)
    assert len(set(chosen.tolist())) == 75
    assert torch.equal(data.labels[chosen], subset.labels)
    assert torch.equal(indices(per_class(data, 25, seed=1)), chosen)
    assert set(indices(per_class(data, 25, seed=2)).tolist()) != set(chosen.tolist())


def test_per_class_on_real_data(mnist):
    subset = per_class(mnist.train, 7)
    assert subset.class_counts().tolist() == [7] * 10
    original = dict(zip(keys(mnist.train.images), mnist.train.labels.tolist(), strict=True))
    assert [original[k] for k in keys(subset.images)] == subset.labels.tolist()


def test_per_class_more_than_exist_raises_with_the_limit():
    data = indexed_set((100, 60, 40))
    with pytest.raises(ValueError, match=r"n <= 40") as error:
        per_class(data, 41)
    assert "'class2'" in str(error.value) and "41" in str(error.value)
    with pytest.raises(ValueError, match="n=0"):
        per_class(data, 0)


def test_keep_classes_relabels_in_the_given_order(mnist):
    train = mnist.train
    kept = keep_classes(train, [5, 6, 7, 8, 9])
    assert kept.classes == ("5", "6", "7", "8", "9")
    assert kept.labels.unique().tolist() == [0, 1, 2, 3, 4]
    assert len(kept) == int((train.labels >= 5).sum())
    for new, old in enumerate(range(5, 10)):
        assert torch.equal(kept.images[kept.labels == new], train.images[train.labels == old])
    swapped = keep_classes(train, [9, 5])
    assert swapped.classes == ("9", "5")
    assert torch.equal(swapped.images[swapped.labels == 0], train.images[train.labels == 9])
    assert torch.equal(swapped.images[swapped.labels == 1], train.images[train.labels == 5])


@pytest.mark.parametrize("classes", [[3, 3], [10], [-1], []])
def test_keep_classes_rejects_bad_classes(mnist, classes):
    with pytest.raises(ValueError, match=re.escape(f"classes={classes}")):
        keep_classes(mnist.val, classes)


def test_merge_classes_relabels_each_class_to_its_group():
    data = indexed_set((100, 60, 40, 30))
    merged = merge_classes(data, {"odd": [3, 1], "even": [0, 2]})
    assert merged.classes == ("odd", "even")
    assert torch.equal(merged.images, data.images)            # same images, same order
    for old, new in ((0, 1), (1, 0), (2, 1), (3, 0)):
        assert (merged.labels[data.labels == old] == new).all()
    assert merged.class_counts().tolist() == [90, 140]


@pytest.mark.parametrize("groups, message", [
    ({"a": [0, 1], "b": [1, 2]}, "in two groups"),
    ({"a": [0, 1]}, "in no group"),
    ({"a": [0, 1, 2], "b": []}, "is empty"),
    ({"a": [0, 1, 2, 3]}, "has label 3"),
    ({}, "non-empty dict"),
])
def test_merge_classes_rejects_groups_that_are_not_a_partition(groups, message):
    with pytest.raises(ValueError, match=message):
        merge_classes(indexed_set(), groups)


# ---------------------------------------------------------------- make_loader

def epoch_order(loader) -> list[int]:
    return torch.cat([indices(ImageSet(x, y, ("a", "b", "c"))) for x, y in loader]).tolist()


def test_loader_covers_every_example_once_per_epoch_in_a_reproducible_order():
    data = indexed_set()
    loader = make_loader(data, batch_size=32, seed=5)
    first, second = epoch_order(loader), epoch_order(loader)
    assert sorted(first) == sorted(second) == list(range(len(data)))
    assert first != list(range(len(data)))  # shuffled
    assert first != second  # and reshuffled every epoch
    again = make_loader(data, batch_size=32, seed=5)
    assert [epoch_order(again), epoch_order(again)] == [first, second]
    assert epoch_order(make_loader(data, batch_size=32, seed=6)) != first
    assert epoch_order(make_loader(data, batch_size=32, shuffle=False)) == list(range(len(data)))


def test_loader_batch_shapes():
    data = indexed_set()  # 200 examples
    batches = list(make_loader(data, batch_size=64))
    assert [len(y) for _, y in batches] == [64, 64, 64, 8]
    x, y = batches[0]
    assert x.shape == (64, 1, 28, 28) and x.dtype == torch.float32
    assert y.shape == (64,) and y.dtype == torch.int64
    for images, labels in batches:  # each label belongs to its image
        assert torch.equal(data.labels[indices(ImageSet(images, labels, data.classes))], labels)
    dropped = list(make_loader(data, batch_size=64, drop_last=True))
    assert [len(y) for _, y in dropped] == [64, 64, 64]
    with pytest.raises(ValueError, match="batch_size=0"):
        make_loader(data, batch_size=0)


# ---------------------------------------------------------------- ImageSet

@pytest.mark.parametrize(("images", "labels", "message"), [
    (torch.zeros(4, 28, 28), torch.zeros(4, dtype=torch.int64), r"\(N, 1, H, W\)"),
    (torch.zeros(4, 3, 28, 28), torch.zeros(4, dtype=torch.int64), r"\(4, 3, 28, 28\)"),
    (torch.zeros(4, 1, 28, 28, dtype=torch.uint8), torch.zeros(4, dtype=torch.int64), "255"),
    (torch.zeros(4, 1, 28, 28), torch.zeros(4, dtype=torch.int32), "int64"),
    (torch.zeros(4, 1, 28, 28), torch.zeros(3, dtype=torch.int64), r"shape \(3,\)"),
    (torch.zeros(4, 1, 28, 28), torch.tensor([0, 1, 2, 3]), r"0\.\.2.*got 0\.\.3"),
    (torch.zeros(4, 1, 28, 28), torch.tensor([0, -1, 1, 2]), r"got -1\.\.2"),
])
def test_imageset_rejects_bad_input(images, labels, message):
    with pytest.raises(ValueError, match=message):
        ImageSet(images, labels, ("a", "b", "c"), "bad")


def test_imageset_indexing_and_counts():
    data = indexed_set((3, 2, 1))
    image, label = data[2]
    assert image.shape == (1, 28, 28) and label.dim() == 0
    x, y = data[[0, 4]]
    assert x.shape == (2, 1, 28, 28) and torch.equal(y, data.labels[[0, 4]])
    assert data.class_counts().tolist() == [3, 2, 1] and data.num_classes == 3


# ---------------------------------------------------------------- full MNIST and Fashion-MNIST

@pytest.mark.parametrize("compress", [False, True], ids=["idx", "idx.gz"])
def test_full_mnist_reads_the_idx_files(data_root, monkeypatch, no_network, compress):
    monkeypatch.setattr(ftcore.data, "FULL_VAL_SIZE", 10)  # tiny files: a 10-image validation set
    data = fake_idx_data(n_train=60, n_test=20)
    write_idx_set(data_root / "MNIST" / "raw", data, compress)
    splits = load_dataset("mnist-full", root=data_root)
    assert [len(part) for part in splits] == [50, 10, 20]
    assert_matches_files(splits, data, tuple("0123456789"))
    assert splits.val.class_counts().tolist() == [1] * 10  # stratified


@pytest.mark.parametrize("download", [False, True])
def test_full_mnist_offline_without_files_says_how_to_get_them(data_root, no_network, download):
    with pytest.raises(DataUnavailableError) as error:
        load_dataset("mnist-full", root=data_root, download=download)
    message = str(error.value)
    assert str(data_root / "MNIST" / "raw") in message
    assert all(name in message for name in IDX_NAMES.values())
    assert "load_dataset('mnist')" in message  # the offline alternative
    if download:
        assert "internet" in message
    else:
        assert "download=True" in message
    assert isinstance(error.value, FileNotFoundError)


def test_fashion_mnist_from_debian_files(data_root, tmp_path, monkeypatch, no_network):
    monkeypatch.setattr(ftcore.data, "FULL_VAL_SIZE", 10)
    debian = tmp_path / "debian-fashion"
    data = fake_idx_data(n_train=40, n_test=10, seed=1)
    write_idx_set(debian, data, compress=True)
    monkeypatch.setattr(sources, "DEBIAN_FASHION_DIR", debian)
    splits = load_dataset("fashion-mnist", root=data_root)
    assert_matches_files(splits, data, sources.FASHION_CLASSES)
    assert splits.test.classes[9] == "Ankle boot"
    unpacked = data_root / "FashionMNIST" / "raw"
    assert sorted(p.name for p in unpacked.iterdir()) == sorted(IDX_NAMES.values())


def test_fashion_mnist_completes_an_interrupted_unpack(data_root, tmp_path, monkeypatch,
                                                      no_network):
    monkeypatch.setattr(ftcore.data, "FULL_VAL_SIZE", 10)
    debian = tmp_path / "debian-fashion"
    data = fake_idx_data(n_train=40, n_test=10, seed=2)
    write_idx_set(debian, data, compress=True)
    monkeypatch.setattr(sources, "DEBIAN_FASHION_DIR", debian)
    write_idx(data_root / "FashionMNIST" / "raw" / IDX_NAMES["train_images"], data["train_images"])
    splits = load_dataset("fashion-mnist", root=data_root)  # the other three files are missing
    assert_matches_files(splits, data, sources.FASHION_CLASSES)


def test_fashion_mnist_unavailable_names_the_debian_package(data_root, tmp_path, monkeypatch,
                                                            no_network):
    monkeypatch.setattr(sources, "DEBIAN_FASHION_DIR", tmp_path / "not-installed")
    with pytest.raises(DataUnavailableError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", root=data_root)


def test_unknown_source_lists_the_accepted_names():
    with pytest.raises(ValueError, match="'mnsit'") as error:
        load_dataset("mnsit")
    for name in SOURCES:
        assert repr(name) in str(error.value)
    assert set(SOURCES) == {"mnist", "mnist-full", "uci-digits", "fashion-mnist"}


# ---------------------------------------------------------------- UCI digits, mnist_style

def center_of_mass(image: torch.Tensor) -> tuple[float, float]:
    """(row, column) of the centre of mass of an (H, W) image."""
    rows, cols = torch.meshgrid(torch.arange(image.shape[0]), torch.arange(image.shape[1]),
                                indexing="ij")
    mass = image.sum()
    return float((image * rows).sum() / mass), float((image * cols).sum() / mass)


def ink_box(image: torch.Tensor) -> tuple[int, int]:
    """Height and width of the smallest box holding every non-zero pixel."""
    rows, cols = image.any(dim=1).nonzero(), image.any(dim=0).nonzero()
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def test_uci_digits_sizes_and_format(uci):
    assert [len(part) for part in uci] == [1257, 180, 360]
    pool = sum(part.class_counts() for part in uci)
    for part in uci:
        assert part.images.shape[1:] == (1, 28, 28) and part.images.dtype == torch.float32
        assert 0 <= part.images.min() and part.images.max() <= 1
        assert_stratified(part, pool)
    from sklearn.datasets import load_digits
    assert pool.tolist() == np.bincount(load_digits().target).tolist()


def test_uci_digits_look_like_mnist(uci):
    centre = (28 - 1) / 2  # the middle of pixels 0..27
    for part in uci:
        for image in part.images[:, 0]:
            r, c = center_of_mass(image)
            assert abs(r - centre) <= 1 and abs(c - centre) <= 1
            assert max(ink_box(image)) <= 20


@pytest.mark.parametrize("where", ["top_left", "bottom_right", "wide"])
def test_mnist_style_centres_and_fits_the_ink(where):
    image = torch.zeros(8, 8)
    if where == "top_left":  # an L: its mass is not at its box's centre
        image[0:5, 0] = 1.0
        image[4, 0:3] = 0.5
    elif where == "bottom_right":
        image[5:8, 6:8] = torch.tensor([[0.2, 1.0], [1.0, 1.0], [0.3, 0.1]])
    else:
        image[3, 1:8] = 1.0
    out = mnist_style(image)
    assert out.shape == (28, 28) and 0 <= out.min() and out.max() <= 1
    r, c = center_of_mass(out)
    assert abs(r - 13.5) <= 1 and abs(c - 13.5) <= 1
    assert 18 <= max(ink_box(out)) <= 20  # the longer side is scaled up to the 20-px box


def test_mnist_style_of_a_blank_image_is_blank():
    assert torch.equal(mnist_style(torch.zeros(8, 8)), torch.zeros(28, 28))


# ---------------------------------------------------------------- data root and caches

def test_data_root_follows_ftcore_data(data_root, tmp_path, monkeypatch):
    assert ftcore.data.data_root() == data_root.resolve()
    other = tmp_path / "elsewhere"
    monkeypatch.setenv("FTCORE_DATA", str(other))
    assert ftcore.data.data_root() == other.resolve() and other.is_dir()
    assert ftcore.data.data_root(tmp_path / "given") == (tmp_path / "given").resolve()


def test_data_root_does_not_depend_on_the_working_directory(tmp_path, monkeypatch, repo_data):
    monkeypatch.delenv("FTCORE_DATA")
    monkeypatch.chdir(tmp_path)
    assert data_root() == repo_data.resolve()
    assert not (tmp_path / "datasets").exists()


def test_atomic_save_leaves_no_temporary_files(tmp_path):
    path = atomic_save({"a": torch.arange(3)}, tmp_path / "cache" / "thing.pt")
    assert [p.name for p in path.parent.iterdir()] == ["thing.pt"]
    assert torch.equal(safe_load(path)["a"], torch.arange(3))


def test_interrupted_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = atomic_save({"version": 1}, tmp_path / "thing.pt")
    old = path.read_bytes()

    def crash_halfway(obj, f):
        f.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_module.torch, "save", crash_halfway)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({"version": 2}, path)
    assert path.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["thing.pt"]


def test_corrupt_cache_is_rebuilt(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return torch.zeros(2, 28, 28, dtype=torch.uint8), torch.tensor([0, 1])

    path = tmp_path / "cache" / "thing.pt"
    path.parent.mkdir()
    path.write_bytes(os.urandom(64))
    images, labels = sources._cached("thing", tmp_path, build)
    assert len(calls) == 1 and labels.tolist() == [0, 1]
    assert safe_load(path)["labels"].tolist() == [0, 1]  # replaced by a good file
    assert [p.name for p in path.parent.iterdir()] == ["thing.pt"]  # no temporary left over
    sources._cached("thing", tmp_path, build)
    assert len(calls) == 1  # and read back without building again
    atomic_save({"format": sources.CACHE_FORMAT + 1, "images": images, "labels": labels}, path)
    sources._cached("thing", tmp_path, build)
    assert len(calls) == 2  # a cache in another format is rebuilt too
    assert safe_load(path)["format"] == sources.CACHE_FORMAT


def test_corrupt_uci_cache_is_rebuilt_with_the_same_data(data_root, uci):
    path = data_root / "cache" / "uci-digits.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x80\x02 this is not a torch file" * 10)
    rebuilt = load_dataset("uci-digits", root=data_root)
    for a, b in zip(rebuilt, uci, strict=True):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert set(safe_load(path)) >= {"images", "labels"}


def test_make_loader_leaves_the_global_rng_alone():
    data = indexed_set()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(123)
        expected = torch.rand(3)
        torch.manual_seed(123)
        for _ in range(2):  # two epochs
            list(make_loader(data, batch_size=16, seed=1))
        assert torch.equal(torch.rand(3), expected)


def test_cache_files_are_readable_by_others(tmp_path):
    path = atomic_save({"x": torch.zeros(2)}, tmp_path / "shared.pt")
    assert path.stat().st_mode & 0o777 == 0o644


def test_fashion_mnist_is_read_once_then_loaded_from_its_cache_without_torchvision(
        data_root, tmp_path, monkeypatch, no_network):
    monkeypatch.setattr(ftcore.data, "FULL_VAL_SIZE", 10)
    debian = tmp_path / "debian-fashion"
    data = fake_idx_data(n_train=40, n_test=10, seed=3)
    write_idx_set(debian, data, compress=True)
    monkeypatch.setattr(sources, "DEBIAN_FASHION_DIR", debian)
    load_dataset("fashion-mnist", root=data_root)  # reads the files, writes the cache
    assert (data_root / "cache" / "fashion-mnist.pt").is_file()
    shutil.rmtree(data_root / "FashionMNIST")  # the files are gone: only the cache can answer
    monkeypatch.setattr(sources, "DEBIAN_FASHION_DIR", tmp_path / "not-installed")
    code = ("import sys\nimport ftcore.data\nfrom ftcore.data import load_dataset\n"
            "ftcore.data.FULL_VAL_SIZE = 10\n"
            f"splits = load_dataset('fashion-mnist', root={str(data_root)!r})\n"
            "print(sum(len(part) for part in splits), 'torchvision' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr[-1500:]
    assert done.stdout.split() == ["50", "False"]
    (data_root / "cache" / "fashion-mnist.pt").write_bytes(b"not a checkpoint")  # corrupt:
    with pytest.raises(DataUnavailableError):  # rebuilt from the files, which are gone now
        load_dataset("fashion-mnist", root=data_root)
