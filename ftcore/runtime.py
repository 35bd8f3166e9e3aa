"""Device choice and progress-bar switch: the two facts about the machine a run depends on."""

from __future__ import annotations

import os

import torch


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA if present, else Apple's MPS if present, else the CPU."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def progress_enabled(progress: bool | None = None) -> bool:
    """Whether to show tqdm progress bars: ``progress`` if given; otherwise on, unless the
    environment variable ``FTCORE_PROGRESS=0`` or ``CI`` is set (tests, nbval, CI logs)."""
    if progress is not None:
        return progress
    if os.environ.get("FTCORE_PROGRESS", "").strip() in ("0", "false", "no", "off"):
        return False
    return not os.environ.get("CI")
