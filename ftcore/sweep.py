"""Hyper-parameter sweeps as plain records: run every combination, compare, pick the best.

>>> records = sweep(lambda lr, batch_size: {"val_acc": train_and_score(lr, batch_size)},
...                 {"lr": [0.01, 0.1], "batch_size": [16, 64]})        # 4 runs
>>> print(table(records))
>>> best(records, "val_acc")            # the record with the highest validation accuracy
>>> average(runs, by="lr", keys=["val_acc"])   # the mean over repeats (e.g. seeds) per lr
>>> summary(runs, by="lr", key="val_acc")      # mean, std, min, max, spread per lr
>>> spread_of(runs, "val_acc", lr=0.1)         # max - min over the seeds of lr=0.1

A comparison of two settings is worth stating only when the gap between their means is well
above the spread of each over seeds: ``gap > 2 * max(spread_a, spread_b)``.

Choose on the validation split only: the test split is for one final measurement of the
chosen setting, never for choosing (a choice made on the test set makes its score optimistic).
"""

from __future__ import annotations

import itertools
import math
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from .parallel import run_all


def grid_points(grid: Mapping[str, Sequence]) -> list[dict]:
    """Every combination of the values in ``grid``, as dicts, the last name varying fastest.

    ``grid_points({"lr": [0.1, 0.01], "epochs": [5]})`` is
    ``[{"lr": 0.1, "epochs": 5}, {"lr": 0.01, "epochs": 5}]``.
    """
    if not isinstance(grid, Mapping) or not grid:
        raise ValueError(f"grid={grid!r} must be a non-empty dict of name -> list of values, "
                         "e.g. {'lr': [0.01, 0.1]}")
    for name, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise ValueError(f"grid[{name!r}]={values!r} must be a non-empty list of values, "
                             f"e.g. [{values!r}]")
    grid = {name: list(values) for name, values in grid.items()}  # a generator is read once
    empty = [name for name, values in grid.items() if not values]
    if empty:
        raise ValueError(f"grid[{empty[0]!r}] is empty: it must be a non-empty list of values")
    return [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())]


def sweep(run: Callable[..., Mapping], grid: Mapping[str, Sequence], *, n_jobs: int = 1,
          backend: str | None = None, address: str | None = None) -> list[dict]:
    """Call ``run(**point)`` for every point of the grid; return one record per run.

    ``run`` takes the grid's names as keyword arguments and returns a dict of results (e.g.
    ``{"val_acc": 0.91}``). Each record is the point, then the results, then ``seconds`` (the
    run's wall time). A result may not reuse a parameter's name.

    ``n_jobs``, ``backend``, ``address``: run the points in parallel processes or on a cluster
    (:func:`ftcore.parallel.run_all`); the records are the same, in the same order.
    """
    points = grid_points(grid)
    timed = run_all(_timed, [{"run": run, "point": point} for point in points],
                    n_jobs=n_jobs, backend=backend, address=address)
    records = []
    for point, (result, seconds) in zip(points, timed, strict=True):
        if not isinstance(result, Mapping):
            raise TypeError(f"run({point}) returned {type(result).__name__}; it must return a "
                            "dict of results, e.g. {'val_acc': 0.9}")
        clash = sorted(set(point) & set(result))
        if clash:
            raise ValueError(f"run's results {clash} have the same names as parameters; "
                             "rename them (e.g. 'final_lr')")
        records.append({**point, **result, "seconds": seconds})
    return records


def _timed(run: Callable[..., Mapping], point: dict) -> tuple[object, float]:
    start = time.perf_counter()
    result = run(**point)
    return result, time.perf_counter() - start


def best(records: Sequence[Mapping], key: str, mode: str = "max") -> dict:
    """The record with the highest (``mode="max"``) or lowest (``"min"``) ``record[key]``;
    the first one on ties. NaN values are never best."""
    if mode not in ("max", "min"):
        raise ValueError(f"mode={mode!r} is not one of 'max', 'min'")
    if not records:
        raise ValueError("best: there are no records to choose from")
    missing = [i for i, r in enumerate(records) if key not in r]
    if missing:
        raise KeyError(f"record {missing[0]} has no {key!r}; it has {sorted(records[missing[0]])}")
    usable = [r for r in records if not _is_nan(r[key])]
    if not usable:
        raise ValueError(f"every record has {key}=nan: there is no best one")
    pick = max if mode == "max" else min
    return dict(pick(usable, key=lambda r: r[key]))


def group(records: Sequence[Mapping], by: str | Sequence[str],
          keys: Sequence[str] = ()) -> dict[tuple, list[Mapping]]:
    """The records that share the values of ``by``, keyed by those values, in order of first
    appearance; a ``KeyError`` names a field of ``by`` or ``keys`` that a record lacks."""
    by = [by] if isinstance(by, str) else list(by)
    groups: dict[tuple, list[Mapping]] = {}
    for r in records:
        missing = [k for k in (*by, *keys) if k not in r]
        if missing:
            raise KeyError(f"a record has no {missing[0]!r}; it has {sorted(r)}")
        groups.setdefault(tuple(r[k] for k in by), []).append(r)
    return groups


def average(records: Sequence[Mapping], by: str | Sequence[str],
            keys: Sequence[str]) -> list[dict]:
    """Mean of ``keys`` over the records that share the values of ``by`` (e.g. over seeds).

    ``average(runs, "p", ["val_acc"])`` turns one record per (p, seed) into one record per p:
    ``{"p": 0.5, "val_acc": <mean over seeds>, "n": <number of seeds>}``, in order of first
    appearance.
    """
    by = [by] if isinstance(by, str) else list(by)
    return [{**dict(zip(by, values, strict=True)),
             **{k: sum(r[k] for r in rows) / len(rows) for k in keys}, "n": len(rows)}
            for values, rows in group(records, by, keys).items()]


def summary(records: Sequence[Mapping], by: str | Sequence[str], key: str) -> list[dict]:
    """Mean and spread of ``key`` over the records that share the values of ``by``.

    Returns one dict per group, in order of first appearance: the ``by`` fields plus ``mean``,
    ``std`` (sample standard deviation, 0 for one run), ``min``, ``max``, ``spread``
    (``max - min``, the range the seeds span) and ``n`` (number of runs, e.g. seeds).
    """
    by = [by] if isinstance(by, str) else list(by)
    rows_out = []
    for values, rows in group(records, by, [key]).items():
        scores = [float(r[key]) for r in rows]
        rows_out.append({**dict(zip(by, values, strict=True)), "mean": statistics.fmean(scores),
                         "std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
                         "min": min(scores), "max": max(scores),
                         "spread": max(scores) - min(scores), "n": len(scores)})
    return rows_out


def spread_of(records: Sequence[Mapping], key: str, **where) -> float:
    """``max - min`` of ``key`` over the records whose fields equal ``where`` (e.g. one
    strategy's seeds): ``spread_of(runs, "val_acc", strategy="full")``."""
    rows = [r for r in records if all(r.get(k) == v for k, v in where.items())]
    if not rows:
        raise ValueError(f"spread_of: no record has {where}")
    scores = [float(r[key]) for r in rows]
    return max(scores) - min(scores)


def table(records: Sequence[Mapping], columns: Sequence[str] | None = None,
          digits: int = 3) -> str:
    """Records as an aligned text table (floats rounded to ``digits``), one row per record.

    ``columns`` picks and orders the columns; default: every key, in order of first appearance.
    Missing values are blank.
    """
    if columns is None:
        columns = list(dict.fromkeys(k for r in records for k in r))
    cells = [[_format(r.get(c, ""), digits) for c in columns] for r in records]
    widths = [max([len(str(c))] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    numeric = [bool(cells) and all(_numeric(row[i]) for row in cells)
               for i in range(len(columns))]  # numbers are right-aligned, text left-aligned

    def line(values):
        return "  ".join(v.rjust(w) if right else v.ljust(w)
                         for v, w, right in zip(values, widths, numeric, strict=True)).rstrip()

    return "\n".join([line([str(c) for c in columns]), line(["-" * w for w in widths]),
                      *(line(row) for row in cells)])


def _format(value, digits: int) -> str:
    if isinstance(value, float):  # values that would print as 0.000 keep a digit: 0.0003, 1e-05
        if value == 0 or abs(value) >= 10 ** -digits or math.isnan(value):
            return f"{value:.{digits}f}"
        return f"{value:.{digits}g}"
    return str(value)


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_nan(value) -> bool:
    return isinstance(value, float) and math.isnan(value)


def selection_bias(correct, n_val: int, repeats: int = 200, seed: int = 0) -> list[dict]:
    """The winner's curse, measured over many selections instead of one.

    ``correct`` is a 0/1 matrix (candidates, N): candidate ``c`` got held-out example ``i``
    right, on N examples that no candidate trained on (a list of lists, a NumPy array or a
    tensor). Each of ``repeats`` rounds splits the N examples at random into ``n_val`` for
    validation and the other ``N - n_val`` as new data, chooses the candidate with the highest
    validation accuracy (the first on ties, like :func:`best`), and returns one record per round:
    ``{"repeat", "chosen", "val_acc", "new_acc", "optimism"}``, with ``optimism = val_acc -
    new_acc`` of the chosen candidate. With one candidate there is no choice, so its optimism
    averages to zero: the control. The same ``seed`` gives the same splits for any ``correct``.
    """
    import numpy as np

    correct = np.asarray(correct.cpu() if hasattr(correct, "cpu") else correct, dtype=float)
    if correct.ndim != 2 or correct.shape[0] < 1 or correct.shape[1] < 2:
        raise ValueError(f"correct has shape {correct.shape}; it must be a matrix "
                         "(candidates, examples) with at least 1 candidate and 2 examples")
    if not np.isin(correct, (0.0, 1.0)).all():
        raise ValueError("correct must hold 0/1 (or True/False): was each example classified "
                         "correctly by each candidate")
    n = correct.shape[1]
    if not (isinstance(n_val, int) and 1 <= n_val < n):
        raise ValueError(f"n_val={n_val!r} must be an integer from 1 to {n - 1} (the examples "
                         "left over are the new data)")
    if not (isinstance(repeats, int) and repeats >= 1):
        raise ValueError(f"repeats={repeats!r} must be an integer >= 1")
    rng = np.random.default_rng(seed)
    records = []
    for repeat in range(repeats):
        is_val = np.zeros(n, dtype=bool)
        is_val[rng.permutation(n)[:n_val]] = True
        val_acc, new_acc = correct[:, is_val].mean(axis=1), correct[:, ~is_val].mean(axis=1)
        chosen = int(np.argmax(val_acc))  # the first of the tied best, as best() does
        records.append({"repeat": repeat, "chosen": chosen, "val_acc": float(val_acc[chosen]),
                        "new_acc": float(new_acc[chosen]),
                        "optimism": float(val_acc[chosen] - new_acc[chosen])})
    return records
