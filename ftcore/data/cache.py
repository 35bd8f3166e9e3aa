"""Where data and caches live, and how cache files are written safely.

The data root is ``<repository>/datasets`` (found from this file, not from the current
directory), or the folder named by the environment variable ``FTCORE_DATA``.
Cache files are written atomically: to a temporary file in the same folder, then renamed, so
an interrupted run never leaves a half-written file behind; the temporary files of a run that
was killed outright are removed by the next write into that folder (:func:`clean_stale_tmp`).

Errors about the data root name the setting it came from (``root=``, ``FTCORE_DATA``, or the
command line's ``--data-root``), so they say what to change.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch

from ..checks import check_type, check_writable_dir, make_folder

ENV_VAR = "FTCORE_DATA"
#: A temporary file older than this (seconds) belongs to a write that was killed: no live write
#: takes an hour to save a cache file.
STALE_SECONDS = 3600


def root_setting(root: str | os.PathLike | None = None) -> str:
    """Where the data root comes from, as the user set it: ``"root="``, ``"FTCORE_DATA"`` or
    ``"the default data folder"`` (for error messages)."""
    if root is not None:
        return "root="
    return ENV_VAR if os.environ.get(ENV_VAR) else "the default data folder"


def data_root(root: str | os.PathLike | None = None, *, setting: str | None = None) -> Path:
    """The folder for datasets and caches: ``root`` if given, else ``$FTCORE_DATA``, else
    ``datasets/`` next to the ``ftcore`` package. Created if missing.

    A path that is a file raises ``ParameterError`` (a ``ValueError``) naming the setting it
    came from (``setting``, default: the one :func:`root_setting` finds). Whether the folder can
    be written is checked where a write is about to happen (:func:`check_writable`), so a
    read-only folder that already holds the caches still works.
    """
    setting = setting or root_setting(root)
    if root is None:
        root = os.environ.get(ENV_VAR) or Path(__file__).resolve().parents[2] / "datasets"
    check_type(root, f"the data root ({setting})", (str, os.PathLike),
               hint="pass a folder's path, e.g. root='datasets'")
    return make_folder(root, f"the data root ({setting})")


def check_writable(folder: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """``folder`` (inside the data root ``root``; created if missing), after checking that a
    file can be written in it; ``PermissionError`` naming the data root's setting otherwise.
    Called before work whose result will be cached there."""
    return check_writable_dir(folder, f"the data root ({root_setting(root)})")


def clean_stale_tmp(folder: str | os.PathLike, max_age: float = STALE_SECONDS) -> list[Path]:
    """Remove the ``.*.tmp`` files that :func:`atomic_save` left in ``folder`` when its process
    was killed (older than ``max_age`` seconds, so a write in progress is never touched).
    Returns the removed paths."""
    removed = []
    for tmp in Path(folder).glob(".*.tmp"):
        try:
            if time.time() - tmp.stat().st_mtime > max_age:
                tmp.unlink()
                removed.append(tmp)
        except OSError:  # another process removed it, or it is not ours to remove
            pass
    return removed


def atomic_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save(obj, path)`` through a temporary file and an atomic rename. Stale
    temporary files of killed earlier writes in the same folder are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_tmp(path.parent)
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
    return require_keys(obj, path, required_keys)


def require_keys(obj, path: str | os.PathLike, required_keys: tuple[str, ...]) -> dict:
    """``obj`` if it is a dict with every one of ``required_keys``; else
    :class:`CorruptFileError` naming the file and what it lacks."""
    missing = [k for k in required_keys if not isinstance(obj, dict) or k not in obj]
    if missing:
        raise CorruptFileError(
            f"{path} lacks the entries {missing}: it was not written by ftcore, or is damaged. "
            "Delete it and create it again."
        )
    return obj
