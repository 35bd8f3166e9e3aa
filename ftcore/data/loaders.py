"""Seeded, fast DataLoaders for in-memory image sets."""

from __future__ import annotations

import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler

from ..checks import ParameterError, check_int


def make_loader(data: torch.utils.data.Dataset, batch_size: int = 64, shuffle: bool = True,
                seed: int = 0, drop_last: bool = False) -> DataLoader:
    """A ``DataLoader`` that yields ``(images, labels)`` batches in a reproducible order.

    The same ``seed`` gives the same order of batches, epoch after epoch, on every run.
    For an :class:`ImageSet` each batch is gathered with one indexing operation (the sampler
    yields whole lists of indices), which is many times faster than stacking single images.
    """
    batch_size = check_int(batch_size, "batch_size", low=1, hint="e.g. batch_size=64")
    seed = check_int(seed, "seed", low=0, hint="e.g. seed=0")
    if not hasattr(data, "__getitem__") or not hasattr(data, "__len__"):
        raise ParameterError(f"data must be a Dataset (e.g. an ImageSet), got "
                             f"{type(data).__name__}")
    generator = torch.Generator().manual_seed(seed)
    order = RandomSampler(data, generator=generator) if shuffle else SequentialSampler(data)
    batches = BatchSampler(order, batch_size, drop_last)
    # batch_size=None: the dataset receives a list of indices and returns a whole batch.
    # generator=: the loader's own per-epoch seed comes from it, not from the global RNG.
    return DataLoader(data, sampler=batches, batch_size=None, generator=generator)
