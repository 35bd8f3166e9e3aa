"""ftcore.parallel and the grids built on it: parallel runs give the serial run's records."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from helpers import tiny_cnn
from test_cli import TINY, cli_data, root, run  # noqa: F401  (fixtures)

from ftcore.continual import compare_remedies, split_mnist
from ftcore.models import MLP
from ftcore.parallel import run_all
from ftcore.sweep import sweep
from ftcore.transfer import strategy_grid

TIMING = {"seconds", "history"}  # wall times differ run to run; history holds them too


def square_plus(x, y=0):
    return {"value": x * x + y}


def without_timing(records):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def test_run_all_keeps_the_order_of_the_calls_serial_and_parallel():
    calls = [{"x": x, "y": 1} for x in (3, 1, 2, 5)]
    serial = run_all(square_plus, calls)
    assert [r["value"] for r in serial] == [10, 2, 5, 26]
    assert run_all(square_plus, calls, n_jobs=2) == serial


def test_a_notebook_function_that_reads_classes_next_to_torch_runs_in_workers(mnist_small):
    # cloudpickle sends torch.classes along with such a function; plain pickling refused it
    train, _ = mnist_small

    def relabel(data, seed):
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
        return {"classes": data.classes, "first": int(data.labels[order][0])}
    calls = [{"data": train, "seed": seed} for seed in (0, 1)]
    assert run_all(relabel, calls, n_jobs=2) == run_all(relabel, calls)


@pytest.mark.parametrize("n_jobs", [0, -2, 1.5, "2", True])
def test_bad_n_jobs_is_refused_before_any_run(n_jobs):
    ran = []
    with pytest.raises(ValueError, match="n_jobs"):
        run_all(lambda **kw: ran.append(kw), [{"x": 1}], n_jobs=n_jobs)
    assert ran == []


def test_bad_backend_and_address_without_dask_are_refused():
    with pytest.raises(ValueError, match="backend='spark' is not one of"):
        run_all(square_plus, [{"x": 1}], n_jobs=2, backend="spark")
    with pytest.raises(ValueError, match="needs backend='dask'"):
        run_all(square_plus, [{"x": 1}], address="tcp://127.0.0.1:8786")


def test_sweep_in_parallel_gives_the_serial_records():
    grid = {"x": [1, 2, 3], "y": [0, 10]}
    serial = sweep(square_plus, grid)
    parallel = sweep(square_plus, grid, n_jobs=2)
    assert without_timing(parallel) == without_timing(serial)
    assert all(r["seconds"] >= 0 for r in parallel)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_strategy_grid_in_parallel_gives_the_serial_records(mnist_small, optimizer):
    train, test = mnist_small
    model = tiny_cnn()
    options = dict(strategies=("scratch", "feature_extraction", "full"), labels_per_class=[2],
                   seeds=[0, 1], steps=4, batch_size=10, optimizer=optimizer,
                   lr=0.05 if optimizer == "sgd" else 3e-3)
    serial = strategy_grid(model, train, test, **options)
    parallel = strategy_grid(model, train, test, n_jobs=2, **options)
    assert len(serial) == 6 and {r["optimizer"] for r in parallel} == {optimizer}
    # the same computation on the same machine and thread count: identical, bit for bit
    assert without_timing(parallel) == without_timing(serial)


def test_compare_remedies_in_parallel_gives_the_serial_results(mnist):
    tasks = split_mnist(mnist, "task")[:2]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = MLP(10, (16,))
    options = dict(epochs=1, lr=0.05, seed=0)
    serial = compare_remedies(model, tasks, {"naive": "naive", "replay": "replay"}, **options)
    parallel = compare_remedies(model, tasks, {"naive": "naive", "replay": "replay"},
                                n_jobs=2, **options)
    assert list(parallel) == ["naive", "replay"]
    for name in serial:
        assert parallel[name].accuracy == serial[name].accuracy


@pytest.mark.skipif(importlib.util.find_spec("distributed") is None,
                    reason="dask.distributed is not installed (pip install 'ftcore[cluster]')")
def test_the_same_grid_runs_on_a_local_dask_cluster(mnist_small):
    from distributed import LocalCluster

    train, test = mnist_small
    model = tiny_cnn()
    options = dict(strategies=("scratch", "full"), labels_per_class=[2], seeds=[0], steps=3,
                   batch_size=10, lr=0.05)
    serial = strategy_grid(model, train, test, **options)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        on_dask = strategy_grid(model, train, test, backend="dask",
                                address=cluster.scheduler_address, **options)
    assert without_timing(on_dask) == without_timing(serial)


def test_finetune_with_jobs_prints_the_serial_table(root, tmp_path):  # noqa: F811
    argv = ["finetune", "--target", "uci-digits", "--strategy", "scratch", "full",
            "--labels-per-class", 1, "--seeds", 2, "--steps", 2, *TINY, "--no-figure"]
    status, serial, err = run(*argv)
    assert status == 0, err
    status, parallel, err = run(*argv, "--jobs", 2)
    assert status == 0, err
    assert parallel == serial


def test_run_all_starts_costly_calls_first_and_still_answers_in_the_order_of_the_calls():
    def started(i):  # when this call began, and its own answer
        import time

        return time.monotonic(), i * 10

    calls = [{"i": i} for i in range(6)]
    out = run_all(started, calls, n_jobs=2, cost=lambda kwargs: kwargs["i"])
    assert [answer for _, answer in out] == [0, 10, 20, 30, 40, 50]  # the calls' order
    first = min(range(6), key=lambda i: out[i][0])
    assert first in (4, 5)  # but the two costliest calls were dispatched first
    assert run_all(started, calls, cost=lambda kwargs: kwargs["i"])[0][1] == 0  # serial too
