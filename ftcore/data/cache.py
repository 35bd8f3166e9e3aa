"""Where data and caches live, and how cache files are written safely.

The data root is ``<repository>/datasets`` (found from this file, not from the current
directory), or the folder named by the environment variable ``FTCORE_DATA``.
Cache files are written atomically: to a temporary file in the same folder, then renamed, so
an interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

ENV_VAR = "FTCORE_DATA"


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder for datasets and caches: ``root`` if given, else ``$FTCORE_DATA``, else
    ``datasets/`` next to the ``ftcore`` package. Created if missing."""
    if root is None:
        root = os.environ.get(ENV_VAR) or Path(__file__).resolve().parents[2] / "datasets"
    path = Path(root).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def atomic_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save(obj, path)`` through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.chmod(tmp, 0o644)  # mkstemp makes owner-only files; caches may be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class CorruptFileError(ValueError):
    """A checkpoint or cache file exists but cannot be read (truncated, or not a torch file)."""


def safe_load(path: str | os.PathLike, *, required_keys: tuple[str, ...] = ()) -> dict:
    """Load a dict saved by :func:`atomic_save`, with ``weights_only=True`` (no code runs).

    Raises ``FileNotFoundError`` if the file is missing and :class:`CorruptFileError` if it is
    unreadable or lacks one of ``required_keys``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for damaged files
        raise CorruptFileError(
            f"{path} is not a readable torch file ({type(error).__name__}: {error}). It may be "
            "truncated or corrupt: delete it and create it again."
        ) from error
    missing = [k for k in required_keys if not isinstance(obj, dict) or k not in obj]
    if missing:
        raise CorruptFileError(
            f"{path} lacks the entries {missing}: it was not written by ftcore, or is damaged. "
            "Delete it and create it again."
        )
    return obj
