"""Independent runs on every core, or on a cluster: one function the experiment grids share.

An experiment grid (strategies x label budgets x seeds, remedies x scenarios, a sweep) is a
list of runs that do not depend on each other. ``run_all`` calls ``run(**kwargs)`` for each
of them and returns the results **in the order of the calls**, whichever finishes first::

    results = run_all(train_one, [{"seed": 0}, {"seed": 1}], n_jobs=2)   # two processes

* ``n_jobs=1`` (the default) is a plain loop in this process: nothing to install, nothing
  to pickle, the same as the code was before.
* ``n_jobs=N`` runs the calls in N worker processes with joblib (its ``loky`` backend);
  ``-1`` means one per core. Each worker trains on ``threads`` PyTorch threads (default 1):
  N workers x 1 thread keeps N cores busy without oversubscribing them, and each reuses the
  memory it frees (:mod:`ftcore.allocator`).
* ``backend="dask"`` (with ``address``, a scheduler such as ``"tcp://10.0.0.5:8786"``) sends
  the same calls to a Dask cluster through joblib's Dask backend (extra ``ftcore[cluster]``);
  without an address, a local cluster of ``n_jobs`` workers is started for the call. (Ray's
  joblib backend would plug in the same way; it is not offered because it is not tested here.)

Every run seeds all its randomness from its own arguments (the grids pass ``seed=``), so a
parallel run returns the same records as the serial one (on the same machine, with the same
number of threads per run). ``run`` and its arguments are sent to the workers with cloudpickle
(lambdas and closures are fine; what they capture is copied to every worker).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

BACKENDS = ("loky", "dask")


def check_jobs(n_jobs, backend: str | None = None) -> None:
    """Raise a clear ``ValueError`` for an ``n_jobs`` or ``backend`` that cannot work."""
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0 or n_jobs < -1:
        raise ValueError(f"n_jobs={n_jobs!r} must be a whole number >= 1 (processes), or -1 "
                         "(one per core)")
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not one of "
                         f"{', '.join(repr(b) for b in BACKENDS)} (or None: joblib's default)")


def run_all(run: Callable[..., object], calls: Sequence[Mapping], *, n_jobs: int = 1,
            backend: str | None = None, address: str | None = None,
            threads: int = 1, cost: Callable[[Mapping], float] | None = None) -> list:
    """``[run(**kwargs) for kwargs in calls]``, in ``n_jobs`` processes or on a cluster.

    Args:
        run: the function to call (sent to the workers with cloudpickle).
        calls: one dict of keyword arguments per run.
        n_jobs: 1 (serial, in this process), N processes, or -1 (one per core).
        backend: ``None``/``"loky"`` (processes on this machine) or ``"dask"`` (a cluster).
        address: the Dask scheduler's address (``backend="dask"``); default: a local cluster.
        threads: PyTorch threads in each worker process (not used when ``n_jobs=1``).
        cost: ``cost(kwargs)`` estimates how long a call takes (e.g. its training set's
            size); in parallel the calls then start longest first, so that no worker is left
            alone with a long run at the end (the results do not change, nor their order).
    Returns:
        the results, in the order of ``calls``.
    """
    check_jobs(n_jobs, backend)
    if address is not None and backend != "dask":
        raise ValueError(f"address={address!r} names a Dask scheduler: it needs backend='dask'")
    calls = [dict(kwargs) for kwargs in calls]
    if n_jobs == 1 and backend in (None, "loky"):
        return [run(**kwargs) for kwargs in calls]

    _send_torch_classes_by_name()
    order = list(range(len(calls)))
    if cost is not None:  # longest first (a stable sort: equal costs keep their order)
        order.sort(key=lambda i: -cost(calls[i]))
    results = dict(zip(order, _in_parallel(run, [calls[i] for i in order], n_jobs, backend,
                                           address, threads), strict=True))
    return [results[i] for i in range(len(calls))]


def _in_parallel(run, calls, n_jobs, backend, address, threads) -> list:
    import joblib  # imported here: the serial path needs nothing but this module

    if backend == "dask":
        return _on_dask(run, calls, n_jobs, address, threads)
    with joblib.parallel_config(backend=backend or "loky", n_jobs=n_jobs):
        # one call queued per worker, not joblib's two: a grid whose calls carry data sets
        # (lesson 09's task sequences) does not hold a second pickled copy of each in memory
        return joblib.Parallel(pre_dispatch="n_jobs")(
            joblib.delayed(_in_worker)(run, kwargs, threads) for kwargs in calls)


def _send_torch_classes_by_name() -> None:
    """Let cloudpickle send a function whose code says ``.classes`` next to ``torch``.

    cloudpickle copies a notebook's function (or a lambda) by value, together with every
    ``torch`` submodule whose name its code mentions: ``data.classes`` in a function that
    also calls ``torch.randperm`` pulls in ``torch.classes``. That one is not a plain module
    (its type is ``torch._classes._Classes``) and plain pickling refuses it ("cannot pickle
    '_Classes' object"). Registered here, it travels by name and the worker imports its own.
    """
    import copyreg

    import torch

    copyreg.pickle(type(torch.classes), _torch_classes_by_name)


def _torch_classes_by_name(_obj) -> tuple:
    import importlib

    return importlib.import_module, ("torch.classes",)


def _in_worker(run: Callable[..., object], kwargs: dict, threads: int):
    """Run one call in a worker process on ``threads`` PyTorch threads, reusing freed memory
    (:func:`ftcore.allocator.reuse_freed_memory`: the worker is ours, and it is faster)."""
    import torch

    from .allocator import reuse_freed_memory

    torch.set_num_threads(threads)
    reuse_freed_memory()  # a worker is a process of ours: its batches reuse each other's memory
    return run(**kwargs)


def _on_dask(run, calls, n_jobs, address, threads) -> list:
    _require("dask", "distributed")
    import joblib
    from distributed import Client, LocalCluster

    cluster = None
    if address is None:  # no scheduler named: a throw-away cluster on this machine
        workers = os.cpu_count() if n_jobs == -1 else n_jobs
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
    client = Client(address or cluster)
    try:
        with joblib.parallel_config(backend="dask"):
            return joblib.Parallel()(joblib.delayed(_in_worker)(run, kwargs, threads)
                                     for kwargs in calls)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _require(backend: str, module: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module.split(".")[0]) is None:
        raise ModuleNotFoundError(
            f"backend={backend!r} needs the package {module.split('.')[0]!r}, which is not "
            "installed: pip install 'ftcore[cluster]'")
