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

from .data import ImageSet, Splits, keep_classes, load_dataset, per_class
from .lr_find import lr_find
from .models import count_parameters
from .names import (
    FINETUNE_STRATEGIES,
    STAGED_STRATEGIES,
    TARGETS,  # lesson 04's targets: name -> what it is
)
from .optim import DEFAULTS, make_optimizer, optimizer_settings
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
from .unfreezing import fit_in_stages, strategy_stages


def epochs_for(steps: int, n_examples: int, batch_size: int) -> int:
    """Epochs that give at least ``steps`` optimizer updates on ``n_examples`` examples."""
    if steps < 1 or n_examples < 1 or batch_size < 1:
        raise ValueError(f"steps={steps}, n_examples={n_examples} and batch_size={batch_size} "
                         "must all be >= 1")
    return math.ceil(steps / math.ceil(n_examples / batch_size))




def load_task(name: str, *, source: str = "mnist", val_per_class: int | None = None,
              test_per_class: int | None = None, seed: int = 0, pretrain_seed: int = 0,
              root=None, download: bool = False, pretrain_epochs: int = PretrainConfig.epochs,
              device=None, progress: bool | None = None) -> tuple[nn.Module, Splits]:
    """One of :data:`TARGETS`: (pre-trained model to start from, its train / val / test splits).

    ``source`` is the MNIST the model is pre-trained on (``"mnist"``, the bundled subset, or
    ``"mnist-full"``), and for ``"mnist-5-9"`` also the data; ``pretrain_seed`` is the
    pre-trained model's seed (:class:`~ftcore.pretrained.PretrainConfig`). ``val_per_class``
    and ``test_per_class`` keep that many validation / test images per class (drawn with
    ``seed``), e.g. to score Fashion-MNIST quickly. The model is
    :func:`~ftcore.pretrained.pretrained_cnn` (trained and cached on first use).
    """
    if name not in TARGETS:
        raise ValueError(f"target {name!r} is not one of {', '.join(map(repr, TARGETS))}")
    digits = range(5) if name == "mnist-5-9" else range(10)
    config = PretrainConfig(source=source, classes=tuple(digits), epochs=pretrain_epochs,
                            seed=pretrain_seed)
    model = pretrained_cnn(config, root=root, device=device, progress=progress)
    if name == "mnist-5-9":
        splits = Splits(*(keep_classes(part, range(5, 10))
                          for part in load_dataset(source, root=root, download=download)))
    else:
        splits = load_dataset(name, root=root, download=download)
    train, val, test = splits
    if val_per_class is not None:
        val = per_class(val, val_per_class, seed=seed)
    if test_per_class is not None:
        test = per_class(test, test_per_class, seed=seed)
    return model, Splits(train, val, test)


def load_target(name: str, *, source: str = "mnist", test_per_class: int | None = None,
                seed: int = 0, pretrain_seed: int = 0, root=None, download: bool = False,
                pretrain_epochs: int = PretrainConfig.epochs, device=None,
                progress: bool | None = None) -> tuple[nn.Module, ImageSet, ImageSet]:
    """:func:`load_task` without the validation split: (pre-trained model, labelled pool, test)."""
    model, (pool, _, test) = load_task(name, source=source, test_per_class=test_per_class,
                                       seed=seed, pretrain_seed=pretrain_seed, root=root,
                                       download=download, pretrain_epochs=pretrain_epochs,
                                       device=device, progress=progress)
    return model, pool, test


def _per_strategy(value, strategy: str, what: str):
    if isinstance(value, Mapping):
        if strategy not in value:
            raise ValueError(f"{what} has no entry for strategy {strategy!r}; it has "
                             f"{', '.join(map(repr, value))}")
        return value[strategy]
    return value


def train_and_score(model: nn.Module, train: ImageSet, test: ImageSet, *, steps: int = 60,
                    batch_size: int = 32, lr: float | None = None,
                    momentum: float | None = None, weight_decay: float | None = None,
                    lr_schedule: str = "cosine",
                    optimizer: str | torch.optim.Optimizer = "sgd",
                    val: ImageSet | None = None, seed: int = 0, device=None,
                    on_divergence: str = "raise") -> dict:
    """Train ``model`` (in place) for ``steps`` updates with :func:`fit`; score it on ``test``.

    ``optimizer``: ``"sgd"`` (default), ``"adam"``, ``"adamw"`` or one you built; ``lr``,
    ``momentum`` and ``weight_decay`` left unset take its defaults (:func:`fit`).
    ``val``, if given, is scored after every epoch (learning curves; it costs time).
    ``device``: where to train and score (default: the best available, see
    :func:`ftcore.runtime.pick_device`). ``on_divergence``: as in :func:`fit`; ``"stop"``
    records a run whose loss blew up (a too-high rate) as a result instead of raising.
    Returns one record: ``test_acc``, ``train_acc`` (last epoch), ``epochs``, ``trainable``,
    ``total`` (parameters), ``seconds`` (wall time of training), ``diverged`` (whether
    training stopped on a blown-up loss) and ``history`` (the per-epoch records of ``fit``).
    """
    epochs = epochs_for(steps, len(train), batch_size)
    trainable = count_parameters(model, trainable_only=True)
    start = time.perf_counter()
    history = fit(model, train, val, epochs=epochs, batch_size=batch_size, lr=lr,
                  momentum=momentum, weight_decay=weight_decay, lr_schedule=lr_schedule,
                  optimizer=optimizer, seed=seed, device=device, progress=False,
                  on_divergence=on_divergence)
    seconds = time.perf_counter() - start
    return {"test_acc": evaluate(model, test, device=device)["accuracy"],
            "train_acc": history.last["train_acc"], "epochs": epochs, "trainable": trainable,
            "total": count_parameters(model), "seconds": seconds,
            "diverged": history.diverged, "history": history.records}


def _check_strategies(strategies: Sequence[str],
                      allowed: Sequence[str] = FINETUNE_STRATEGIES) -> None:
    for strategy in strategies:
        if strategy not in allowed:
            raise ValueError(f"strategy={strategy!r} is not one of "
                             f"{', '.join(repr(s) for s in allowed)}")


def _grid_points(train: ImageSet, strategies: Sequence[str], labels_per_class: Iterable[int],
                 seeds: Iterable[int], task: str | None):
    """(record fields, labelled subset) for every (labels per class, seed, strategy): the same
    ``per_class(train, n, seed)`` subset for each strategy."""
    seeds = list(seeds)
    for n in labels_per_class:
        for seed in seeds:
            subset = per_class(train, n, seed=seed)
            for strategy in strategies:
                yield {"task": task or train.name, "strategy": strategy,
                       "labels_per_class": n, "seed": seed}, subset


def strategy_grid(pretrained: nn.Module, train: ImageSet, test: ImageSet, *,
                  strategies: Sequence[str] = STRATEGIES,
                  labels_per_class: Iterable[int] = (1, 5, 10, 50),
                  seeds: Iterable[int] = (0, 1, 2), steps: int = 60, batch_size: int = 32,
                  lr: float | Mapping[str, float] | None = None,
                  momentum: float | None = None, weight_decay: float | None = None,
                  lr_schedule: str = "cosine", optimizer: str = "sgd",
                  task: str | None = None,
                  measure: Callable[[nn.Module], Mapping] | None = None, device=None,
                  n_jobs: int = 1, backend: str | None = None,
                  address: str | None = None) -> list[dict]:
    """Fine-tune copies of ``pretrained`` with each strategy on small labelled subsets.

    For every number of labels per class ``n`` and every seed, the same ``per_class(train, n,
    seed)`` subset is given to each strategy (:func:`ftcore.surgery.prepare`, new head seeded
    with ``seed``), trained by :func:`train_and_score` and scored on ``test``.
    ``pretrained`` itself is never modified.

    ``strategies`` may also name the staged strategies ``"lp_ft"`` and ``"gradual"``
    (:mod:`ftcore.unfreezing`): they train in stages with the same total number of updates
    as the others get (:func:`staged_train_and_score`).

    Args:
        lr: one learning rate, or one per strategy (``{"full": 0.01, ...}``; a staged
            strategy's may be one per stage, e.g. ``{"lp_ft": (0.1, 0.03)}``), or ``"auto"``
            (here or per strategy): the suggestion of :func:`ftcore.lr_find.lr_find` on each
            run's own labelled subset, per stage for the staged strategies; annealed to 0
            over the run (each stage) by default (``lr_schedule="cosine"``, see :func:`fit`).
            Default: the optimizer's (0.05 for SGD, 1e-3 for Adam and AdamW).
        optimizer: ``"sgd"`` (default), ``"adam"`` or ``"adamw"``, built afresh for every run
            (:func:`ftcore.optim.make_optimizer`); ``momentum`` is SGD's alone. The staged
            strategies train with SGD only (a new one per stage).
        measure: ``measure(model) -> dict``, called on each run's trained model; its fields
            join the run's record (e.g. the accuracy on shifted or other test sets, or
            :func:`ftcore.surgery.feature_change` against ``pretrained``, so the same models
            are scored in and out of distribution). Default: nothing more than ``test``.
        device: where to train (default: the best available).
        n_jobs, backend, address: train the runs in parallel processes or on a cluster
            (:func:`ftcore.parallel.run_all`); the records are the same, in the same order.

    Returns one record per run: ``task``, ``strategy``, ``labels_per_class``, ``seed``,
    ``optimizer``, ``lr`` (the rate used: a number, or one per stage), ``steps`` (optimizer
    updates), the fields of :func:`train_and_score` and those ``measure`` returns.
    """
    _check_strategies(strategies)
    check_jobs(n_jobs, backend)
    if measure is not None and not callable(measure):
        raise ValueError(f"measure={measure!r} must be a function model -> dict of fields, "
                         "or None")
    for strategy in strategies:  # every setting checked before the first run
        rate = _per_strategy(lr, strategy, "lr")
        if strategy in STAGED_STRATEGIES and optimizer != "sgd":
            raise ValueError(f"strategy={strategy!r} trains each stage with SGD; "
                             f"optimizer={optimizer!r} is not supported for it: use "
                             "optimizer='sgd', or the single-stage strategies")
        numeric = isinstance(rate, (int, float)) and not isinstance(rate, bool)
        optimizer_settings(optimizer, lr=rate if numeric else None, momentum=momentum,
                           weight_decay=weight_decay)
    options = {"steps": steps, "batch_size": batch_size, "momentum": momentum,
               "weight_decay": weight_decay, "lr_schedule": lr_schedule,
               "optimizer": optimizer, "device": device}
    points, calls = [], []  # the record's fields, and the arguments of each run
    for point, subset in _grid_points(train, strategies, labels_per_class, seeds, task):
        rate = _per_strategy(lr, point["strategy"], "lr")
        if rate is None:
            rate = DEFAULTS[optimizer]["lr"]
        points.append({**point, "optimizer": optimizer, "lr": rate})
        calls.append({"pretrained": pretrained, "train": subset, "test": test,
                      "strategy": point["strategy"], "seed": point["seed"], "lr": rate,
                      "measure": measure, **options})
    runs = run_all(_strategy_run, calls, n_jobs=n_jobs, backend=backend, address=address,
                   cost=_training_set_size)
    return [{**point, **run} for point, run in zip(points, runs, strict=True)]


def _strategy_run(pretrained: nn.Module, train: ImageSet, test: ImageSet, strategy: str,
                  seed: int, measure: Callable[[nn.Module], Mapping] | None = None,
                  **options) -> dict:
    """One run of :func:`strategy_grid`: a copy of ``pretrained`` prepared for ``strategy``
    (new head seeded with ``seed``), trained on ``train``, scored on ``test`` (and measured by
    ``measure``, if given)."""
    staged = strategy in STAGED_STRATEGIES
    model = prepare(copy.deepcopy(pretrained), "full" if staged else strategy,
                    train.num_classes, seed=seed)
    if staged:  # SGD in every stage (strategy_grid refuses another optimizer up front)
        options.pop("optimizer")
        settings = {k: v for k, v in options.items() if v is not None}
        record = staged_train_and_score(model, train, test, strategy=strategy, seed=seed,
                                        **settings)
    else:
        if options["lr"] == "auto":
            name = options["optimizer"]
            momentum = (DEFAULTS["sgd"]["momentum"] if options["momentum"] is None
                        else options["momentum"])
            build = None if name == "sgd" else (
                lambda params, lr: make_optimizer(name, params, lr=lr,
                                                  weight_decay=options["weight_decay"]))
            options["lr"] = lr_find(model, train, batch_size=options["batch_size"],
                                    momentum=momentum, make_optimizer=build, seed=seed,
                                    device=options["device"]).suggestion
        record = train_and_score(model, train, test, seed=seed, **options)
        record.update(lr=options["lr"],
                      steps=record["epochs"] * math.ceil(len(train) / options["batch_size"]))
    return {**record, **dict(measure(model))} if measure is not None else record


def staged_train_and_score(model: nn.Module, train: ImageSet, test: ImageSet, *, strategy: str,
                           steps: int = 60, batch_size: int = 32,
                           lr: float | Sequence[float] | str = 0.05, momentum: float = 0.9,
                           weight_decay: float = 0.0, lr_schedule: str = "cosine",
                           val: ImageSet | None = None, seed: int = 0, device=None) -> dict:
    """:func:`train_and_score` for a staged strategy (``"lp_ft"`` or ``"gradual"``,
    :func:`ftcore.unfreezing.strategy_stages`): train ``model`` (in place, its head already
    new) stage by stage with :func:`ftcore.unfreezing.fit_in_stages`, score it on ``test``.

    The budget is the one :func:`train_and_score` gives a single-stage strategy with the same
    ``steps``: ``epochs_for(steps, len(train), batch_size)`` whole epochs of updates, shared
    among the stages by the strategy's rule (LP-FT: half each; gradual: equal shares, the
    remainder to the last stages), so every strategy of a grid makes the same number of
    updates. Returns the fields of :func:`train_and_score` (``trainable``: at the end, i.e.
    everything) plus ``lr`` (each stage's rate) and ``steps`` (the updates made).
    """
    budget = epochs_for(steps, len(train), batch_size) * math.ceil(len(train) / batch_size)
    stages = strategy_stages(model, strategy, budget)
    start = time.perf_counter()
    history = fit_in_stages(model, train, val, stages=stages, lr=lr, momentum=momentum,
                            weight_decay=weight_decay, batch_size=batch_size,
                            lr_schedule=lr_schedule, seed=seed, device=device, progress=False)
    seconds = time.perf_counter() - start
    rates = tuple(dict.fromkeys((r["stage"], r["lr"]) for r in history.records))
    return {"test_acc": evaluate(model, test, device=device)["accuracy"],
            "train_acc": history.last["train_acc"], "epochs": len(history),
            "trainable": count_parameters(model, trainable_only=True),
            "total": count_parameters(model), "seconds": seconds, "history": history.records,
            "lr": tuple(rate for _, rate in rates), "steps": history.last["steps"]}


def learning_curve(model: nn.Module, train: ImageSet, val: ImageSet, test: ImageSet, *,
                   steps: int = 100, every: int = 10, lr: float | None = None,
                   momentum: float | None = None, batch_size: int = 25,
                   patience: int | None = None, equal_steps: int | None = None,
                   optimizer: str = "sgd", seed: int = 0, device=None) -> dict:
    """Train ``model`` at a constant rate, scoring ``val`` every ``every`` steps.

    ``optimizer``: ``"sgd"`` (default; ``momentum`` 0.9 unless given), ``"adam"`` or
    ``"adamw"``, with ``lr`` (default: the optimizer's, see :func:`fit`). Training runs in
    chunks of whole epochs of :func:`fit` (at least ``every`` updates each, one optimizer
    throughout, so momentum and Adam's moments carry over). A constant rate makes the model after
    ``k`` updates the same as a run of ``k`` updates, so one run answers both "who is ahead
    after ``equal_steps`` updates" and "how good is each at its best validation point".
    ``patience``: stop after that many checkpoints without a higher validation accuracy
    (early stopping), but not before ``equal_steps``; ``None`` runs all ``steps``. The test
    set is scored twice only, on copies of the weights kept at those two points.

    Returns ``curve`` (one record per checkpoint: ``step``, ``train_acc`` of the last epoch,
    ``val_acc``, ``val_loss``), ``best_step``, ``best_val_acc``, ``best_test_acc`` (at the
    first checkpoint with the highest validation accuracy, :func:`best_point`) and, with
    ``equal_steps``, ``val_acc`` and ``test_acc`` at the first checkpoint at or after it
    (:func:`point_at`). ``model`` is left with the best checkpoint's weights.
    """
    if steps < 1 or every < 1 or (patience is not None and patience < 1):
        raise ValueError(f"steps={steps}, every={every} and patience={patience} must be >= 1 "
                         "(patience may also be None: no early stopping)")
    if equal_steps is not None and not 1 <= equal_steps <= steps:
        raise ValueError(f"equal_steps={equal_steps} must be from 1 to steps={steps}")
    optimizer = make_optimizer(optimizer, [p for p in model.parameters() if p.requires_grad],
                               lr=lr, momentum=momentum)
    epochs = epochs_for(every, len(train), batch_size)
    per_epoch = math.ceil(len(train) / batch_size)
    curve, kept, waited = [], {}, 0
    while not curve or curve[-1]["step"] < steps:
        history = fit(model, train, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                      seed=seed * 100_003 + len(curve), device=device, progress=False,
                      on_divergence="continue")  # a too-large rate is a result of the sweep
        scores = evaluate(model, val, device=device)
        point = {"step": (len(curve) + 1) * epochs * per_epoch,
                 "train_acc": history.last["train_acc"], "val_acc": scores["accuracy"],
                 "val_loss": scores["loss"]}
        curve.append(point)
        if equal_steps is not None and "equal" not in kept and point["step"] >= equal_steps:
            kept["equal"] = copy.deepcopy(model.state_dict())
        if best_point(curve) is point:
            kept["best"], waited = copy.deepcopy(model.state_dict()), 0
        else:
            waited += 1
            if patience is not None and waited >= patience and (
                    equal_steps is None or "equal" in kept):
                break
    result = {"curve": curve}
    for name in ("equal", "best"):  # best last: the model keeps the best weights
        if name in kept:
            model.load_state_dict(kept[name])
            result[name] = evaluate(model, test, device=device)["accuracy"]
    top = best_point(curve)
    out = {"curve": curve, "best_step": top["step"], "best_val_acc": top["val_acc"],
           "best_test_acc": result["best"]}
    if equal_steps is not None:
        out.update(val_acc=point_at(curve, equal_steps)["val_acc"], test_acc=result["equal"])
    return out


def best_point(curve: Sequence[dict], key: str = "val_acc") -> dict:
    """The checkpoint of a :func:`learning_curve` with the highest ``key`` (the earliest on
    ties): where early stopping on validation would have kept the model."""
    if not curve:
        raise ValueError("best_point: the curve has no checkpoints")
    return max(curve, key=lambda r: (r[key], -r["step"]))


def point_at(curve: Sequence[dict], step: int) -> dict:
    """The first checkpoint of a :func:`learning_curve` at or after ``step`` updates."""
    found = [r for r in curve if r["step"] >= step]
    if not found:
        raise ValueError(f"the curve stops at step {curve[-1]['step'] if curve else 0}, before "
                         f"step={step}; train longer or ask for an earlier step")
    return found[0]


def curve_grid(pretrained: nn.Module, splits: Splits, *, strategies: Sequence[str] = STRATEGIES,
               labels_per_class: Iterable[int] = (1, 5, 50), seeds: Iterable[int] = (0, 1, 2),
               lr: float | Sequence[float] | Mapping[str, float | Sequence[float]] = 0.05,
               steps: int = 100, every: int = 10, patience: int | None = None,
               equal_steps: int | None = None, batch_size: int = 25, momentum: float = 0.9,
               task: str | None = None, device=None, n_jobs: int = 1,
               backend: str | None = None, address: str | None = None) -> list[dict]:
    """:func:`learning_curve` for every (labels per class, seed, strategy, learning rate).

    ``splits`` holds the labelled pool (``per_class`` subsets are drawn from its ``train``),
    the validation set that chooses and the test set that reports. ``lr``: one rate, a list of
    rates (the same grid for every strategy: a sweep) or a dict of either per strategy.

    ``n_jobs``, ``backend``, ``address``: the runs in parallel processes or on a cluster
    (:func:`ftcore.parallel.run_all`); the records are the same, in the same order.

    Returns one record per run: ``task``, ``strategy``, ``labels_per_class``, ``seed``, ``lr``
    and the fields of :func:`learning_curve`. ``pretrained`` is not modified.
    """
    _check_strategies(strategies, STRATEGIES)  # learning curves: single-stage strategies only
    if equal_steps is not None and not 1 <= equal_steps <= steps:
        raise ValueError(f"equal_steps={equal_steps} must be from 1 to steps={steps}")
    check_jobs(n_jobs, backend)
    train, val, test = splits
    options = {"steps": steps, "every": every, "momentum": momentum, "batch_size": batch_size,
               "patience": patience, "equal_steps": equal_steps, "device": device}
    points, calls = [], []
    for point, subset in _grid_points(train, strategies, labels_per_class, seeds, task):
        rates = _per_strategy(lr, point["strategy"], "lr")
        for rate in list(rates) if isinstance(rates, Sequence) else [rates]:
            points.append({**point, "lr": rate})
            calls.append({"pretrained": pretrained, "train": subset, "val": val, "test": test,
                          "strategy": point["strategy"], "seed": point["seed"], "lr": rate,
                          **options})
    runs = run_all(_curve_run, calls, n_jobs=n_jobs, backend=backend, address=address,
                   cost=_training_set_size)
    return [{**point, **run} for point, run in zip(points, runs, strict=True)]


def _training_set_size(call: dict) -> int:
    """A run's cost, roughly: the size of its training subset (more labels, more batches)."""
    return len(call["train"])


def _curve_run(pretrained: nn.Module, train: ImageSet, val: ImageSet, test: ImageSet,
               strategy: str, seed: int, **options) -> dict:
    """One run of :func:`curve_grid`: a copy of ``pretrained`` prepared for ``strategy``
    (new head seeded with ``seed``), its :func:`learning_curve` on ``train``."""
    model = prepare(copy.deepcopy(pretrained), strategy, train.num_classes, seed=seed)
    return learning_curve(model, train, val, test, seed=seed, **options)


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
