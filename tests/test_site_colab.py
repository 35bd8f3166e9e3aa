"""Colab: every lesson's first code cell installs ftcore there (and nowhere else), and
``FTCORE_DOWNLOAD=1``, which that cell sets, lets Fashion-MNIST and full MNIST download."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_data import no_network  # noqa: F401 (a fixture)

from ftcore.data import DataUnavailableError, load_dataset, sources

LESSONS = sorted((Path(__file__).resolve().parents[1] / "lessons").glob("[0-9][0-9]_*.ipynb"))

#: The text of every lesson's first code cell. The site hides it (tag remove-cell), and
#: ``site/check_colab_install.py`` runs its install command in a fresh virtual environment.
COLAB_CELL = (
    "# Colab only: install ftcore there and let it download Fashion-MNIST."
    " Elsewhere this cell does nothing.\n"
    """import os
import sys

if "google.colab" in sys.modules:
    %pip install -q "ftcore @ git+https://github.com/ftcore-lessons/ftcore-lessons.git"
    os.environ["FTCORE_DOWNLOAD"] = "1\"""")


def test_there_are_lessons():
    assert len(LESSONS) >= 9


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem[:2])
def test_first_code_cell_is_the_colab_cell_hidden_from_the_site(lesson):
    cells = json.loads(lesson.read_text(encoding="utf-8"))["cells"]
    first = next(c for c in cells if c["cell_type"] == "code")
    assert "".join(first["source"]) == COLAB_CELL
    assert "remove-cell" in first["metadata"].get("tags", [])
    assert first["metadata"].get("jupyter", {}).get("source_hidden") is True
    assert first["outputs"] == []  # it does nothing outside Colab


@pytest.mark.parametrize("name, folder", [("fashion-mnist", "FashionMNIST"),
                                          ("mnist-full", "MNIST")])
@pytest.mark.parametrize("value", [None, "0", "1"])
def test_ftcore_download_1_allows_the_download(data_root, tmp_path, monkeypatch, no_network,  # noqa: F811
                                               name, folder, value):
    monkeypatch.setattr(sources, "DEBIAN_FASHION_DIR", tmp_path / "not-installed")
    if value is None:
        monkeypatch.delenv("FTCORE_DOWNLOAD", raising=False)
    else:
        monkeypatch.setenv("FTCORE_DOWNLOAD", value)
    with pytest.raises(DataUnavailableError) as error:
        load_dataset(name, root=data_root)  # no files here, and the network is off
    tried = "downloading failed" in str(error.value)  # torchvision tried to download
    assert tried == (value == "1")
    assert str(data_root / folder / "raw") in str(error.value)


def test_ftcore_download_0_keeps_an_explicit_download_true(data_root, tmp_path, monkeypatch,
                                                           no_network):  # noqa: F811
    monkeypatch.setattr(sources, "DEBIAN_FASHION_DIR", tmp_path / "not-installed")
    monkeypatch.setenv("FTCORE_DOWNLOAD", "0")
    with pytest.raises(DataUnavailableError, match="downloading failed"):
        load_dataset("fashion-mnist", root=data_root, download=True)


@pytest.mark.parametrize("value", ["yes", "true", " 1", ""])
def test_ftcore_download_other_values_are_refused_before_any_work(data_root, tmp_path,
                                                                  monkeypatch, value):
    monkeypatch.setattr(sources, "DEBIAN_FASHION_DIR", tmp_path / "not-installed")
    monkeypatch.setenv("FTCORE_DOWNLOAD", value)
    with pytest.raises(ValueError, match=r"FTCORE_DOWNLOAD=.* is not one of '0', '1'"):
        load_dataset("mnist-full", root=data_root)
    assert not any(data_root.rglob("*"))  # nothing was written


def test_ftcore_download_leaves_the_bundled_sources_alone(data_root, monkeypatch):
    monkeypatch.setenv("FTCORE_DOWNLOAD", "yes")  # not read: the subset needs no download
    assert len(load_dataset("uci-digits", root=data_root).test) > 0
