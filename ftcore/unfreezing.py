"""Fine-tuning in stages: the head first, then the body (LP-FT; gradual unfreezing).

A new head starts random. Fine-tuning everything at once from there sends large, random
gradients back into the pre-trained body and distorts the features it transfers. Two recipes
train the head first:

* **LP-FT** (Kumar et al. 2022, *Fine-tuning can distort pretrained features*): a linear probe
  (head only, body frozen), then full fine-tuning from the probed head.
* **gradual unfreezing** (Howard & Ruder 2018, ULMFiT): the head alone, then the head and the
  last body block, then one more block at a time, from the output backwards, until everything
  trains.

A schedule is a list of :class:`Stage` s, each ``(steps, parts)``: train the named parts (all
others frozen) for ``steps`` optimizer updates. :func:`fit_in_stages` runs one
:func:`~ftcore.train.fit` per stage and returns one :class:`~ftcore.train.History`, each record
tagged with its stage. :func:`ftcore.surgery.block_change` and
:func:`ftcore.surgery.feature_change` measure the distortion these recipes avoid.

Each stage gets a NEW optimizer (and, with ``lr_schedule="cosine"``, its own annealing to 0):
the stages are separate runs of ``fit``, as fastai's ``freeze_to(-k); fit_one_cycle(...)`` and
LP-FT's probe-then-fine-tune are. Momentum buffers therefore restart at each stage; the
alternative, one optimizer to which each stage adds a parameter group, would carry the head's
momentum over but needs one learning-rate schedule across stages of different lengths.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from .checks import ParameterError, check_choice, check_int, check_number, check_type
from .data import ImageSet
from .lr_find import lr_find
from .names import STAGED_STRATEGIES
from .optim import check_hyperparameters
from .runtime import pick_device
from .surgery import body_blocks, find_head, freeze, part_names, unfreeze
from .train import DIVERGENCE, SCHEDULES, History, check_labels, fit


@dataclass(frozen=True)
class Stage:
    """Train ``parts`` (dotted names, as :func:`~ftcore.surgery.freeze` takes them; the empty
    tuple: the whole model), every other parameter frozen, for ``steps`` optimizer updates."""

    steps: int
    parts: tuple[str, ...] = ()
    name: str = ""


def split_steps(total: int, n: int) -> list[int]:
    """``total`` steps in ``n`` near-equal whole shares, the larger ones last (the later,
    larger stages get the remainder): ``split_steps(10, 4) == [2, 2, 3, 3]``."""
    total = check_int(total, "steps", low=n, hint=f"{n} stages need at least {n} steps, one "
                                                  "each")
    return [total // n + (i >= n - total % n) for i in range(n)]


def lp_ft_stages(model: nn.Module, steps: int, *, probe_fraction: float = 0.5) -> list[Stage]:
    """LP-FT as two stages: the head alone for ``round(probe_fraction * steps)`` updates (at
    least 1), then the whole model for the rest (at least 1)."""
    steps = check_int(steps, "steps", low=2, hint="LP-FT needs at least 2 steps (1 per stage)")
    check_number(probe_fraction, "probe_fraction", low=0, high=1, low_open=True, high_open=True,
                 hint="the share of the steps that trains the head alone, e.g. 0.5")
    probe = min(max(round(probe_fraction * steps), 1), steps - 1)
    head, _ = find_head(model)
    return [Stage(probe, (head,), "linear probe"), Stage(steps - probe, (), "fine-tune")]


def gradual_unfreezing_stages(model: nn.Module, steps: int) -> list[Stage]:
    """ULMFiT's gradual unfreezing: the head, then the head and the last body block, then the
    last two, ..., then the whole model; ``len(body_blocks(model)) + 1`` stages sharing
    ``steps`` by :func:`split_steps`. On SmallCNN: ``head``; ``features.fc`` + head;
    ``features.conv2`` + ...; everything."""
    head, _ = find_head(model)
    body = body_blocks(model)
    shares = split_steps(steps, len(body) + 1)
    stages = [Stage(shares[0], (head,), "head")]
    for k in range(1, len(body) + 1):
        parts = () if k == len(body) else (*body[-k:], head)  # the last: all (and extras)
        stages.append(Stage(shares[k], parts, "everything" if not parts else
                            f"head + {', '.join(body[-k:])}"))
    return stages


def strategy_stages(model: nn.Module, strategy: str, steps: int) -> list[Stage]:
    """The stages of a staged strategy by name: ``"lp_ft"`` (:func:`lp_ft_stages`) or
    ``"gradual"`` (:func:`gradual_unfreezing_stages`), sharing ``steps`` updates."""
    check_choice(strategy, "strategy", STAGED_STRATEGIES)
    return (lp_ft_stages if strategy == "lp_ft" else gradual_unfreezing_stages)(model, steps)


def check_stages(model: nn.Module, stages) -> list[Stage]:
    """``stages`` as a list of :class:`Stage` (``(steps, parts)`` pairs are accepted); raise
    ``ParameterError`` naming the bad stage and what is accepted. Changes nothing."""
    check_type(model, "model", nn.Module)
    if isinstance(stages, (str, bytes)) or not isinstance(stages, Sequence) or not stages:
        raise ParameterError(f"stages={stages!r} must be a non-empty list of Stage(steps, "
                             "parts), e.g. lp_ft_stages(model, 60)")
    checked = []
    for i, stage in enumerate(stages):
        if not isinstance(stage, Stage):
            if not (isinstance(stage, Sequence) and len(stage) == 2):
                raise ParameterError(f"stage {i}: {stage!r} is not a Stage(steps, parts) nor "
                                     "a pair (steps, parts)")
            steps, parts = stage
            stage = Stage(steps, (parts,) if isinstance(parts, str) else tuple(parts))
        check_int(stage.steps, f"stage {i}'s steps", low=1)
        if not isinstance(stage.parts, tuple):
            raise ParameterError(f"stage {i}: parts={stage.parts!r} must be a tuple of part "
                                 "names (the empty tuple: the whole model)")
        for part in stage.parts:
            if not isinstance(part, str) or not _has_trainable(model, part):
                raise ParameterError(f"stage {i}: {part!r} is not a part of "
                                     f"{type(model).__name__} with parameters; valid names: "
                                     f"{', '.join(part_names(model))} (or () for the whole "
                                     "model)")
        checked.append(stage)
    return checked


def _has_trainable(model: nn.Module, part: str) -> bool:
    """True if ``part`` names a submodule with parameters, or a parameter."""
    try:
        return any(True for _ in model.get_submodule(part).parameters())
    except AttributeError:
        pass
    try:
        model.get_parameter(part)
        return True
    except AttributeError:
        return False


def _stage_rates(lr, n: int) -> list[float | str]:
    if lr == "auto":
        return ["auto"] * n
    if isinstance(lr, Sequence) and not isinstance(lr, str):
        if len(lr) != n:
            raise ParameterError(f"lr={list(lr)!r} gives {len(lr)} rate(s) for {n} stage(s): "
                                 "give one rate per stage, one rate for all, or 'auto'")
        return [check_number(r, f"lr[{i}]", low=0, low_open=True) for i, r in enumerate(lr)]
    return [check_number(lr, "lr", low=0, low_open=True,
                         hint="one rate, one per stage, or 'auto' (the range test)")] * n


def fit_in_stages(model: nn.Module, train: ImageSet, val: ImageSet | None = None, *,
                  stages: Sequence[Stage], lr: float | Sequence[float] | str = 0.05,
                  momentum: float = 0.9, weight_decay: float = 0.0, batch_size: int = 64,
                  lr_schedule: str = "constant", seed: int = 0, device=None,
                  progress: bool | None = None, on_divergence: str = "raise") -> History:
    """Train ``model`` (in place) stage after stage: for each :class:`Stage`, freeze every
    parameter but the stage's ``parts`` and :func:`~ftcore.train.fit` exactly ``steps``
    updates with a new :class:`~ftcore.optim.SGD`.

    Args:
        model, train, val: as in :func:`~ftcore.train.fit`; images (N, 1, 28, 28).
        stages: e.g. :func:`lp_ft_stages` or :func:`gradual_unfreezing_stages`.
        lr: one rate for every stage, one per stage (e.g. ``(0.1, 0.03)`` for LP-FT: the
            probe's rate, then fine-tuning's), or ``"auto"``: at the start of each stage, the
            suggestion of :func:`ftcore.lr_find.lr_find` on ``train`` for the parts that stage
            trains (the range test trains a copy: its steps are not in the budget).
        lr_schedule: per stage (``"cosine"`` anneals each stage's rate to 0 over its steps).
        seed: stage ``i`` uses batch-order seed ``seed * 100_003 + i``.
        momentum, weight_decay, batch_size, device, progress, on_divergence: as in ``fit``;
            a divergence with ``on_divergence="stop"`` ends the whole run.

    Returns one :class:`~ftcore.train.History`: the records of every stage's epochs (the last
    epoch of a stage may be partial), ``epoch`` counted over the whole run, plus ``stage``
    (1, 2, ...), ``stage_name``, ``stage_epoch``, ``lr`` (the stage's rate) and ``steps`` (the
    updates so far). The model ends with the last stage's parts trainable. Every argument and
    every stage is checked before the model is changed.
    """
    stages = check_stages(model, stages)
    check_type(train, "train", ImageSet)
    if val is not None:
        check_type(val, "val", ImageSet)
    rates = _stage_rates(lr, len(stages))
    for rate in rates:
        check_hyperparameters(lr=0.1 if rate == "auto" else rate, momentum=momentum,
                              weight_decay=weight_decay, nesterov=False)
    batch_size = check_int(batch_size, "batch_size", low=1, hint="e.g. batch_size=64")
    seed = check_int(seed, "seed", low=0, hint="e.g. seed=0")
    check_choice(lr_schedule, "lr_schedule", SCHEDULES)
    check_choice(on_divergence, "on_divergence", DIVERGENCE)
    for data in (train, val) if val is not None else (train,):
        check_labels(model, data, pick_device(device))

    per_epoch = math.ceil(len(train) / batch_size)
    history, done = History(), 0
    for i, (stage, rate) in enumerate(zip(stages, rates, strict=True)):
        freeze(model)
        unfreeze(model, *stage.parts)  # no parts: the whole model
        if rate == "auto":
            rate = lr_find(model, train, batch_size=batch_size, momentum=momentum,
                           seed=seed * 100_003 + i, device=device).suggestion
        part = fit(model, train, val, epochs=math.ceil(stage.steps / per_epoch),
                   max_steps=stage.steps, lr=rate, momentum=momentum,
                   weight_decay=weight_decay, batch_size=batch_size, lr_schedule=lr_schedule,
                   seed=seed * 100_003 + i, device=device, progress=progress,
                   on_divergence=on_divergence)
        for record in part.records:
            done += min(per_epoch, stage.steps - (record["epoch"] - 1) * per_epoch)
            history.records.append({**record, "epoch": len(history.records) + 1,
                                    "stage": i + 1, "stage_name": stage.name,
                                    "stage_epoch": record["epoch"], "lr": rate, "steps": done})
        history.diverged |= part.diverged
        if part.diverged and on_divergence == "stop":
            break
    finite = [r for r in history.records if math.isfinite(r.get("val_loss", math.nan))]
    if finite:
        history.best_epoch = min(finite, key=lambda r: r["val_loss"])["epoch"]
    return history
