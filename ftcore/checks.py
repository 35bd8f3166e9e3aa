"""Argument checks shared by every public function: validate at the boundary, once.

Each check raises :class:`ParameterError` in scikit-learn's house style: what was given, what is
accepted, and what to do::

    >>> check_int(2.5, "epochs", low=1)
    Traceback (most recent call last):
    ftcore.checks.ParameterError: epochs=2.5 must be a whole number >= 1, e.g. epochs=3

``ParameterError`` is both a ``ValueError`` and a ``TypeError`` (as scikit-learn's
``InvalidParameterError`` is), so ``except ValueError`` catches a wrong value and a wrong type
alike. The checks depend on torch alone, so every module may use them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

import torch


class ParameterError(ValueError, TypeError):
    """An argument of the wrong type or outside its accepted range."""


def check_int(value, name: str, *, low: int | None = None, high: int | None = None,
              hint: str = "") -> int:
    """``value`` as an ``int``; ``ParameterError`` unless it is a whole number in [low, high].

    Accepts Python and NumPy integers (not ``True``/``False``, not ``2.0``, not ``"2"``).
    """
    ok = hasattr(value, "__index__") and not isinstance(value, (bool, torch.Tensor))
    if ok:
        value = int(value.__index__())
        ok = (low is None or value >= low) and (high is None or value <= high)
    if not ok:
        span = (f"from {low} to {high}" if low is not None and high is not None else
                f">= {low}" if low is not None else f"<= {high}" if high is not None else "")
        example = low if low is not None and low > 0 else 1
        raise ParameterError(f"{name}={value!r} must be a whole number {span}".rstrip() +
                             (f"; {hint}" if hint else f", e.g. {name}={example}"))
    return value


def check_number(value, name: str, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False, hint: str = "") -> float:
    """``value`` as a finite ``float`` in the given range; ``ParameterError`` otherwise.

    ``low_open=True`` excludes ``low`` itself (e.g. a learning rate: > 0). Strings such as
    ``"0.1"`` are refused: write the number.
    """
    number = None
    if not isinstance(value, (str, bytes, bool)) and hasattr(value, "__float__"):
        number = float(value)  # int, float, NumPy and one-element tensor numbers
    ok = number is not None and math.isfinite(number)
    if ok and low is not None:
        ok = number > low if low_open else number >= low
    if ok and high is not None:
        ok = number < high if high_open else number <= high
    if not ok:
        if low is not None and high is not None:  # an interval, e.g. [0, 1)
            span = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        elif low is not None:
            span = f"{'>' if low_open else '>='} {low:g}"
        else:
            span = f"{'<' if high_open else '<='} {high:g}" if high is not None else ""
        what = span if span.startswith("in ") else "a finite number" + (f" {span}" if span
                                                                        else "")
        raise ParameterError(f"{name}={value!r} must be {what}" + (f"; {hint}" if hint else ""))
    return number


def check_choice(value, name: str, choices: Iterable[str]) -> str:
    """``value`` if it is one of ``choices``; ``ParameterError`` listing them otherwise."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise ParameterError(f"{name}={value!r} is not one of "
                             f"{', '.join(repr(c) for c in choices)}")
    return value


def check_type(value, name: str, types: type | tuple[type, ...], hint: str = "") -> None:
    """``ParameterError`` unless ``isinstance(value, types)``; ``hint`` says what to pass."""
    if not isinstance(value, types):
        wanted = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        article = "an" if wanted[0].lower() in "aeiou" else "a"
        raise ParameterError(f"{name} must be {article} {wanted}, got {type(value).__name__} "
                             f"({_short(value)})" + (f"; {hint}" if hint else ""))


def check_pixels(images, who: str) -> None:
    """``ParameterError`` unless ``images`` is a floating-point tensor whose values are all
    finite and in [0, 1] (the format of every ftcore image); the message says how to fix it."""
    if not isinstance(images, torch.Tensor):
        raise ParameterError(f"{who} expects images as a torch.Tensor, got "
                             f"{type(images).__name__}; convert with torch.as_tensor(x)")
    if not images.is_floating_point():
        raise ParameterError(f"{who} expects float pixels in [0, 1], got {images.dtype}: "
                             "divide by 255, e.g. x.float() / 255")
    if images.numel() == 0:
        return
    low, high = (float(v) for v in torch.aminmax(images))  # one pass; NaN and inf show here
    if not (math.isfinite(low) and math.isfinite(high)):
        bad = int((~torch.isfinite(images)).sum())
        raise ParameterError(f"{who} got {bad} non-finite pixel value(s) (NaN or inf) of "
                             f"{images.numel()}: every pixel must be a number in [0, 1]. Find "
                             "where they came from (a division by zero?), or replace them with "
                             "torch.nan_to_num(x).clamp(0, 1)")
    if low < -1e-6 or high > 1 + 1e-6:
        fix = ("divide uint8 pixels by 255" if low >= -1e-6 else  # negative: normalised
               "do not normalise (ftcore's models expect raw pixels in [0, 1]), or clamp(0, 1)")
        raise ParameterError(f"{who} expects pixel values in [0, 1], got {low:.3g} to {high:.3g}: "
                             f"{fix}")


def make_folder(path: str | os.PathLike, what: str) -> Path:
    """Create the folder ``path`` if missing and return it resolved. ``what`` names the setting
    the path came from (e.g. ``"the data root (FTCORE_DATA)"``, ``"--figure"``), so the error
    says what to change: ``ParameterError`` if the path or a parent is a file, ``PermissionError``
    if it cannot be created."""
    path = Path(path).expanduser()
    blocker = next((p for p in (path, *path.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise ParameterError(f"{what} is {str(path)!r}, but {str(blocker)!r} is a file, not a "
                             "folder: choose a folder (it is created if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PermissionError(f"{what} is {str(path)!r}, which cannot be created "
                              f"({error.strerror or error}): choose a folder you can write, "
                              "or fix its permissions") from error
    return path.resolve()


def check_writable_dir(path: str | os.PathLike, what: str) -> Path:
    """:func:`make_folder`, then check that a file can be written in it (``PermissionError``
    naming ``what`` if not). Call it before long work whose result will be saved there."""
    path = make_folder(path, what)
    probe = path / f".ftcore-write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise PermissionError(f"{what} is {str(path)!r}, which cannot be written "
                              f"({error.strerror or error}): choose a folder you can write, "
                              "or fix its permissions") from error
    return path


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
