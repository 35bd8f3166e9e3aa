"""Seeded, fast DataLoaders for in-memory image sets."""

from __future__ import annotations

import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler


def make_loader(data: torch.utils.data.Dataset, batch_size: int = 64, shuffle: bool = True,
                seed: int = 0, drop_last: bool = False) -> DataLoader:
    """A ``DataLoader`` that yields ``(images, labels)`` batches in a reproducible order.

    The same ``seed`` gives the same order of batches, epoch after epoch, on every run.
    For an :class:`ImageSet` each batch is gathered with one indexing operation (the sampler
    yields whole lists of indices), which is many times faster than stacking single images.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    generator = torch.Generator().manual_seed(seed)
    order = RandomSampler(data, generator=generator) if shuffle else SequentialSampler(data)
    batches = BatchSampler(order, batch_size, drop_last)
    # batch_size=None: the dataset receives a list of indices and returns a whole batch.
    # generator=: the loader's own per-epoch seed comes from it, not from the global RNG.
    return DataLoader(data, sampler=batches, batch_size=None, generator=generator)
