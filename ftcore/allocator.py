"""The CPU memory allocator: let a process reuse the memory PyTorch frees.

Speed, not maths, and nothing here changes a result. Every forward pass allocates its
activations anew (a batch of 256 images through SmallCNN's first block: 12.8 MB per tensor)
and frees them at the end. glibc's ``malloc`` hands blocks that large back to the operating
system, so the next pass asks for them again and the kernel zeroes every 4 KiB page on first
touch (a page fault each). glibc's default adapts to a process's history, so this costs
nothing in one process and doubles the time in the next: scoring 1,000 images took 61-63 ms
with memory reused and 63-109 ms without; a sweep of 45 short fine-tuning runs on two workers
took 9.4 s instead of 11.1. Reusing removes both the cost and its variance
(``benchmarks/benchmark.py`` measures it). PyTorch's performance-tuning
guide advises jemalloc or TCMalloc for the same reason; with glibc, two ``mallopt`` settings do
it. Linux with glibc only: elsewhere (macOS, Windows, musl) it does nothing.

Imports nothing but the standard library, so a command line can call it before PyTorch loads.
"""

from __future__ import annotations

import ctypes
import platform

#: glibc's ``mallopt`` parameters (``<malloc.h>``) and the values :func:`reuse_freed_memory` sets.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # blocks up to 32 MiB come from the heap (glibc's maximum)
TRIM_THRESHOLD = 128 * 1024 * 1024  # up to 128 MiB of freed heap is kept for the next batch


def _libc_function(name: str):
    """glibc's function ``name`` in this process, or None where there is no glibc."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None


def reuse_freed_memory() -> bool:
    """From now on, keep the memory this process frees for its next allocations.

    Blocks up to 32 MiB come from the heap (``M_MMAP_THRESHOLD``) and up to 128 MiB of freed
    heap is kept (``M_TRIM_THRESHOLD``), so the activations of one batch reuse the pages of
    the last. The setting is the process's, for its lifetime, so ftcore applies it only in
    processes of its own: the worker processes of :func:`ftcore.parallel.run_all` and the
    ``ftcore`` command line (and the benchmark). A notebook or script may call it too. Memory
    use grows by at most what is kept (measured: 25-45 MB per process). Returns whether both
    settings took (False without glibc).
    """
    mallopt = _libc_function("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    took = [mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD), mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)]
    return all(took)  # mallopt returns 1 on success, 0 on error

