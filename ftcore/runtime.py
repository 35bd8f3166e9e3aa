"""Device choice and progress-bar switch: the two facts about the machine a run depends on."""

from __future__ import annotations

import os

import torch

from .checks import ParameterError


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA if present, else Apple's MPS if present, else the CPU.

    A device this machine does not have (``"cuda"`` without a GPU) raises ``ValueError``
    saying which devices it has, before any work."""
    if device is not None:
        try:
            chosen = torch.device(device)
        except (RuntimeError, TypeError) as error:
            raise ParameterError(f"device={device!r} is not a device; use 'cpu', 'cuda', "
                                 "'cuda:N', 'mps' or None (the best available)") from error
        if chosen.type not in available_devices():
            raise ParameterError(f"device={device!r} was asked for, but this machine has only "
                                 f"{', '.join(map(repr, available_devices()))}; use "
                                 "device=None (the best available) or device='cpu'")
        if chosen.type == "cuda" and (chosen.index or 0) >= torch.cuda.device_count():
            raise ParameterError(f"device={device!r}: this machine has "
                                 f"{torch.cuda.device_count()} CUDA device(s), numbered from 0")
        return chosen
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def available_devices() -> tuple[str, ...]:
    """The device types PyTorch can use here: ``"cpu"``, plus ``"cuda"`` and ``"mps"`` when
    present."""
    mps = getattr(torch.backends, "mps", None)
    return ("cpu", *(["cuda"] if torch.cuda.is_available() else []),
            *(["mps"] if mps is not None and mps.is_available() else []))


def progress_enabled(progress: bool | None = None) -> bool:
    """Whether to show tqdm progress bars: ``progress`` if given; otherwise on, unless the
    environment variable ``FTCORE_PROGRESS=0`` or ``CI`` is set (tests, nbval, CI logs)."""
    if progress is not None:
        return progress
    if os.environ.get("FTCORE_PROGRESS", "").strip() in ("0", "false", "no", "off"):
        return False
    return not os.environ.get("CI")
