"""Transfer-learning experiments: fine-tune one pre-trained model many ways, return records.

:func:`strategy_grid` runs every (labels per class, seed, strategy) combination on one target
task and returns plain records (a list of dicts) that figures and asserts both read;
:func:`summarise` turns them into mean and spread over seeds. The training budget is counted in
optimizer *steps*, not epochs, so a 1-label-per-class run and a 50-label run get the same
number of updates (:func:`epochs_for`).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
from torch import nn

from .data import ImageSet, keep_classes, load_dataset, per_class
from .models import count_parameters
from .names import TARGETS  # lesson 03's targets: name -> what it is
from .parallel import check_jobs, run_all
from .pretrained import PretrainConfig, pretrained_cnn
from .surgery import (
    STRATEGIES,
    body_blocks,
    find_head,
    freeze_below,
    prepare,
    reinitialise,
    replace_head,
)
from .sweep import summary
from .train import evaluate, fit


def epochs_for(steps: int, n_examples: int, batch_size: int) -> int:
    """Epochs that give at least ``steps`` optimizer updates on ``n_examples`` examples."""
    if steps < 1 or n_examples < 1 or batch_size < 1:
        raise ValueError(f"steps={steps}, n_examples={n_examples} and batch_size={batch_size} "
                         "must all be >= 1")
    return math.ceil(steps / math.ceil(n_examples / batch_size))




def load_target(name: str, *, source: str = "mnist", test_per_class: int | None = None,
                seed: int = 0, root=None, download: bool = False,
                pretrain_epochs: int = PretrainConfig.epochs, device=None,
                progress: bool | None = None) -> tuple[nn.Module, ImageSet, ImageSet]:
    """One of :data:`TARGETS`: (pre-trained model to start from, labelled pool, test set).

    ``source`` is the MNIST the model is pre-trained on (``"mnist"``, the bundled subset, or
    ``"mnist-full"``), and for ``"mnist-5-9"`` also the data; ``test_per_class`` keeps that many
    test images per class (drawn with ``seed``), e.g. to score Fashion-MNIST quickly. The model
    is :func:`~ftcore.pretrained.pretrained_cnn` (trained and cached on first use).
    """
    if name not in TARGETS:
        raise ValueError(f"target {name!r} is not one of {', '.join(map(repr, TARGETS))}")
    digits = range(5) if name == "mnist-5-9" else range(10)
    config = PretrainConfig(source=source, classes=tuple(digits), epochs=pretrain_epochs)
    model = pretrained_cnn(config, root=root, device=device, progress=progress)
    if name == "mnist-5-9":
        mnist = load_dataset(source, root=root, download=download)
        pool, test = keep_classes(mnist.train, range(5, 10)), keep_classes(mnist.test, range(5, 10))
    else:
        splits = load_dataset(name, root=root, download=download)
        pool, test = splits.train, splits.test
    if test_per_class is not None:
        test = per_class(test, test_per_class, seed=seed)
    return model, pool, test


def _per_strategy(value, strategy: str, what: str):
    if isinstance(value, Mapping):
        if strategy not in value:
            raise ValueError(f"{what} has no entry for strategy {strategy!r}; it has "
                             f"{', '.join(map(repr, value))}")
        return value[strategy]
    return value


def train_and_score(model: nn.Module, train: ImageSet, test: ImageSet, *, steps: int = 60,
                    batch_size: int = 32, lr: float = 0.05, momentum: float = 0.9,
                    weight_decay: float = 0.0, lr_schedule: str = "cosine",
                    optimizer: torch.optim.Optimizer | None = None,
                    val: ImageSet | None = None, seed: int = 0, device=None) -> dict:
    """Train ``model`` (in place) for ``steps`` updates with :func:`fit`; score it on ``test``.

    ``val``, if given, is scored after every epoch (learning curves; it costs time).
    ``device``: where to train and score (default: the best available, see
    :func:`ftcore.runtime.pick_device`).
    Returns one record: ``test_acc``, ``train_acc`` (last epoch), ``epochs``, ``trainable``,
    ``total`` (parameters), ``seconds`` (wall time of training) and ``history`` (the
    per-epoch records of ``fit``).
    """
    epochs = epochs_for(steps, len(train), batch_size)
    trainable = count_parameters(model, trainable_only=True)
    start = time.perf_counter()
    history = fit(model, train, val, epochs=epochs, batch_size=batch_size, lr=lr,
                  momentum=momentum, weight_decay=weight_decay, lr_schedule=lr_schedule,
                  optimizer=optimizer, seed=seed, device=device, progress=False)
    seconds = time.perf_counter() - start
    return {"test_acc": evaluate(model, test, device=device)["accuracy"],
            "train_acc": history.last["train_acc"], "epochs": epochs, "trainable": trainable,
            "total": count_parameters(model), "seconds": seconds, "history": history.records}


def strategy_grid(pretrained: nn.Module, train: ImageSet, test: ImageSet, *,
                  strategies: Sequence[str] = STRATEGIES,
                  labels_per_class: Iterable[int] = (1, 5, 10, 50),
                  seeds: Iterable[int] = (0, 1, 2), steps: int = 60, batch_size: int = 32,
                  lr: float | Mapping[str, float] = 0.05, momentum: float = 0.9,
                  weight_decay: float = 0.0, lr_schedule: str = "cosine",
                  task: str | None = None, device=None, n_jobs: int = 1,
                  backend: str | None = None, address: str | None = None) -> list[dict]:
    """Fine-tune copies of ``pretrained`` with each strategy on small labelled subsets.

    For every number of labels per class ``n`` and every seed, the same ``per_class(train, n,
    seed)`` subset is given to each strategy (:func:`ftcore.surgery.prepare`, new head seeded
    with ``seed``), trained by :func:`train_and_score` and scored on ``test``.
    ``pretrained`` itself is never modified.

    Args:
        lr: one learning rate, or one per strategy (``{"full": 0.01, ...}``); annealed to 0
            over the run by default (``lr_schedule="cosine"``, see :func:`fit`).
        device: where to train (default: the best available).
        n_jobs, backend, address: train the runs in parallel processes or on a cluster
            (:func:`ftcore.parallel.run_all`); the records are the same, in the same order.

    Returns one record per run: ``task``, ``strategy``, ``labels_per_class``, ``seed``, ``lr``
    and the fields of :func:`train_and_score`.
    """
    for strategy in strategies:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy={strategy!r} is not one of "
                             f"{', '.join(repr(s) for s in STRATEGIES)}")
    check_jobs(n_jobs, backend)
    options = {"steps": steps, "batch_size": batch_size, "momentum": momentum,
               "weight_decay": weight_decay, "lr_schedule": lr_schedule, "device": device}
    points, calls = [], []  # the record's fields, and the arguments of each run
    for n in labels_per_class:
        for seed in seeds:
            subset = per_class(train, n, seed=seed)
            for strategy in strategies:
                rate = _per_strategy(lr, strategy, "lr")
                points.append({"task": task or train.name, "strategy": strategy,
                               "labels_per_class": n, "seed": seed, "lr": rate})
                calls.append({"pretrained": pretrained, "train": subset, "test": test,
                              "strategy": strategy, "seed": seed, "lr": rate, **options})
    runs = run_all(_strategy_run, calls, n_jobs=n_jobs, backend=backend, address=address)
    return [{**point, **run} for point, run in zip(points, runs, strict=True)]


def _strategy_run(pretrained: nn.Module, train: ImageSet, test: ImageSet, strategy: str,
                  seed: int, **options) -> dict:
    """One run of :func:`strategy_grid`: a copy of ``pretrained`` prepared for ``strategy``
    (new head seeded with ``seed``), trained on ``train`` and scored on ``test``."""
    model = prepare(copy.deepcopy(pretrained), strategy, train.num_classes, seed=seed)
    return train_and_score(model, train, test, seed=seed, **options)


def transfer_first(pretrained: nn.Module, k: int, num_classes: int, *, fine_tune: bool,
                   seed: int | None = None) -> nn.Module:
    """Yosinski et al.'s (2014) transfer: keep the first ``k`` body blocks of ``pretrained``,
    re-initialise every later block and the head (new, ``num_classes`` outputs).

    The ``k`` transferred blocks are frozen (``fine_tune=False``) or trained with the rest
    (``fine_tune=True``). ``k=0`` is training from scratch. Returns a new model;
    ``pretrained`` is not modified.
    """
    model = replace_head(copy.deepcopy(pretrained), num_classes, seed=seed)
    body = body_blocks(model)
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= len(body):
        raise ValueError(f"k={k!r} must be a whole number from 0 to {len(body)} (the body "
                         f"blocks: {', '.join(body)})")
    reinitialise(model, *body[k:], find_head(model)[0], seed=seed)
    return freeze_below(model, 0 if fine_tune else k)


def summarise(records: Sequence[dict], key: str = "test_acc",
              by: Sequence[str] = ("task", "strategy", "labels_per_class")) -> list[dict]:
    """Mean, min, max, spread and standard deviation of ``key`` over the records that share
    ``by`` (:func:`ftcore.sweep.summary` with this module's default grouping).

    Returns one dict per group, in order of first appearance: the ``by`` fields plus ``mean``,
    ``std`` (0 for a single run), ``min``, ``max``, ``spread`` and ``n`` (number of runs).
    """
    return summary(records, by, key)


def pivot(rows: Sequence[dict], row: str, column: str, value: Callable[[dict], object],
          **where) -> list[dict]:
    """A two-way table as records: one per distinct ``row`` value, one column per ``column``
    value, each cell ``value(matching row)``; only rows whose fields equal ``where``.

    ``pivot(summary, "strategy", "labels_per_class", lambda r: f"{r['mean']:.2f}",
    task="uci-digits")`` gives ``[{"strategy": "scratch", "1": "0.43", "5": ...}, ...]``,
    ready for :func:`ftcore.sweep.table`.
    """
    chosen = [r for r in rows if all(r.get(k) == v for k, v in where.items())]
    table: dict = {}
    for r in chosen:
        table.setdefault(r[row], {row: r[row]})[str(r[column])] = value(r)
    return list(table.values())


def lookup(rows: Sequence[dict], **where) -> dict:
    """The one row whose fields equal ``where``, e.g. ``lookup(table, strategy="full",
    labels_per_class=5)``; ``KeyError`` if none or several match."""
    found = [r for r in rows if all(r.get(k) == v for k, v in where.items())]
    if len(found) != 1:
        raise KeyError(f"{len(found)} rows match {where}")
    return found[0]


def relative_change(before: nn.Module | dict, after: nn.Module) -> dict[str, float]:
    """How far each parameter moved: ``||w_after - w_before|| / ||w_before||`` by name.

    ``before`` is a model or a ``state_dict`` copy taken before training.
    """
    old = before.state_dict() if isinstance(before, nn.Module) else before
    return {name: float(torch.linalg.vector_norm(p.detach() - old[name])
                        / torch.linalg.vector_norm(old[name]).clamp_min(1e-12))
            for name, p in after.named_parameters() if name in old}
