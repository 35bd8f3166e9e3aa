"""The learning-rate range test (Smith 2017; fastai's ``lr_find``): one short run that sweeps
the learning rate from tiny to huge and watches the loss.

Train a copy of the model for ``steps`` minibatches, raising the rate exponentially::

    lr_i = start * (end / start) ** (i / (steps - 1))          i = 0 ... steps - 1

and record each step's loss. A single minibatch's loss is noisy, so it is smoothed by an
exponential moving average, corrected for its start at 0 (as Adam corrects its moments)::

    avg_i      = smoothing * avg_(i-1) + (1 - smoothing) * loss_i        avg_(-1) = 0
    smoothed_i = avg_i / (1 - smoothing ** (i + 1))

At first the rate is too small to change anything and the loss is flat; then it falls, fastest
somewhere in the middle; then the rate is too large and the loss shoots up. The test stops
there: when ``smoothed_i > diverge * min(smoothed)``, or a loss is NaN or infinite.

Two rules read a rate off the curve; both are returned, and :attr:`LRFind.suggestion` is
the first:

* ``min / 10``: a tenth of the rate at the lowest smoothed loss (fastai's ``minimum``). At the
  minimum the rate is already too large: the loss has stopped falling because the steps
  overshoot, and the moving average lags behind the raw loss, so the minimum shows up late.
  One decade lower is back on the descent.
* ``steepest``: where the smoothed loss falls fastest, the most negative slope
  ``d smoothed / d log(lr)`` before the minimum (fastai's ``steep``). It is the slope of a
  noisy curve, so it jumps between runs more than the minimum does; that is why it is not the
  suggestion (on the tests' problems it moved by 25x between seeds, min / 10 by 3x).

On a quadratic (least squares) with gradient descent the loss can only grow once the rate
passes ``2 / L`` (``L``: the Hessian's largest eigenvalue); the tests check that the test
stops above that rate and that ``min / 10`` lies below it.

Only the model's trainable parameters are stepped (a frozen body stays frozen), the caller's
model is never changed (the test trains a deep copy) and the global random state is left alone.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .checks import ParameterError, check_int, check_number, check_type
from .data import ImageSet, make_loader
from .optim import SGD
from .runtime import pick_device
from .train import check_labels, set_train_mode

#: ``make_optimizer(params, lr)``: builds the optimizer the range test steps.
OptimizerFactory = Callable[[list[nn.Parameter], float], torch.optim.Optimizer]
#: ``loss(logits, labels)``: (N, C) and (N,) -> a scalar tensor.
LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class LRFind:
    """What :func:`lr_find` measured: one entry per step, and the rates read off the curve.

    ``lrs``, ``losses`` (the raw minibatch losses) and ``smoothed`` have one value per step
    taken (fewer than ``steps`` when the test stopped early). ``suggestion`` is the rate
    chosen by the rule in ``rule`` (a sentence); ``steepest`` and ``min_over_10`` are the two
    rules' rates (``steepest`` is None when the loss never fell before its minimum), and
    ``min_rate`` the rate at the lowest smoothed loss.
    """

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float
    rule: str
    steepest: float | None
    min_rate: float
    min_over_10: float
    stopped_early: bool  # the smoothed loss exceeded diverge x its minimum, or was not finite

    def __len__(self) -> int:
        return len(self.lrs)


def rates(start: float, end: float, steps: int) -> list[float]:
    """``steps`` rates from ``start`` to ``end``, evenly spaced on a log scale."""
    return [start * (end / start) ** (i / (steps - 1)) for i in range(steps)]


def lr_find(model: nn.Module, train: ImageSet, *, start: float = 1e-5, end: float = 1.0,
            steps: int = 100, batch_size: int = 64, momentum: float = 0.9,
            make_optimizer: OptimizerFactory | None = None, smoothing: float = 0.98,
            diverge: float = 4.0, loss: LossFunction = F.cross_entropy, seed: int = 0,
            device=None) -> LRFind:
    """Run the learning-rate range test on a copy of ``model`` and suggest a rate.

    Args:
        model: maps images (N, 1, 28, 28) to logits (N, num_classes); NOT changed (a deep
            copy is trained). Its trainable parameters are the ones the test steps.
        train: the training :class:`~ftcore.data.ImageSet`; one minibatch per step, in a
            seeded order, starting a new epoch when the set is used up.
        start, end: the first and last rate, 0 < start < end.
        steps: how many rates (and minibatches), >= 5.
        batch_size, momentum: as in :func:`~ftcore.train.fit` (momentum of the default SGD).
        make_optimizer: ``make_optimizer(params, lr)`` builds the optimizer to test (e.g.
            ``lambda params, lr: SGD(params, lr=lr)``); default
            ``ftcore.optim.SGD(params, lr=lr, momentum=momentum)``. Its parameter groups keep
            their ratios: a group built with ``k * lr`` is stepped at ``k * lr_i``.
        smoothing: the moving average's weight of the past, in [0, 1) (0: no smoothing).
        diverge: stop when the smoothed loss exceeds this multiple of its minimum, > 1.
        loss: ``loss(logits (N, C), labels (N,))`` -> a scalar; default cross-entropy, the
            loss :func:`~ftcore.train.fit` trains with.
        seed: fixes the batch order and dropout masks.
        device: where to train the copy (default: the best available).

    Returns an :class:`LRFind`; its ``suggestion`` is the ``min / 10`` rate, ``rule`` says
    so in a sentence (and warns when the loss never fell). Every argument is checked before
    any work. The moving average lags by up to ``1 / (1 - smoothing)`` steps, so the curve's
    minimum sits at a higher rate the faster the sweep (fewer ``steps`` per decade).
    """
    check_type(model, "model", nn.Module)
    check_type(train, "train", ImageSet, hint="wrap images and labels as ftcore.data.ImageSet")
    start = check_number(start, "start", low=0, low_open=True, hint="e.g. start=1e-5")
    end = check_number(end, "end", low=start, low_open=True,
                       hint=f"the last rate must be larger than start={start:g}, e.g. end=1.0")
    steps = check_int(steps, "steps", low=5, hint="the number of rates tried, e.g. steps=100")
    batch_size = check_int(batch_size, "batch_size", low=1, hint="e.g. batch_size=64")
    momentum = check_number(momentum, "momentum", low=0, high=1, high_open=True,
                            hint="0.9 is the usual choice, 0 switches it off")
    smoothing = check_number(smoothing, "smoothing", low=0, high=1, high_open=True,
                             hint="the weight of the past in the moving average, e.g. 0.98 "
                                  "(0: no smoothing)")
    diverge = check_number(diverge, "diverge", low=1, low_open=True,
                           hint="stop when the smoothed loss is this many times its minimum, "
                                "e.g. 4")
    seed = check_int(seed, "seed", low=0, hint="e.g. seed=0")
    if not callable(loss):
        raise ParameterError(f"loss={loss!r} must be a function (logits, labels) -> scalar, "
                             "e.g. torch.nn.functional.cross_entropy (the default)")
    if make_optimizer is not None and not callable(make_optimizer):
        raise ParameterError(f"make_optimizer={make_optimizer!r} must be a function "
                             "(params, lr) -> optimizer, e.g. lambda params, lr: "
                             "ftcore.optim.SGD(params, lr=lr), or None (SGD with momentum)")
    if not any(p.requires_grad for p in model.parameters()):
        raise ParameterError("lr_find: the model has no trainable parameters, so there is no "
                             "rate to find. Unfreeze a part first, e.g. "
                             "ftcore.surgery.unfreeze(model, 'head').")
    device = pick_device(device)
    check_labels(model, train, device)  # on the caller's model: it is only evaluated

    work = copy.deepcopy(model).to(device)
    trainable = [p for p in work.parameters() if p.requires_grad]
    optimizer = (make_optimizer or _sgd(momentum))(trainable, start)
    check_type(optimizer, "make_optimizer(params, lr)", torch.optim.Optimizer)
    scale = [group["lr"] / start for group in optimizer.param_groups]  # each group's ratio
    batches = _forever(make_loader(train, batch_size=batch_size, shuffle=True, seed=seed))

    lrs, losses, smoothed = [], [], []
    average, stopped = 0.0, False
    with torch.random.fork_rng(devices=[]):  # dropout seeded here, the caller's RNG untouched
        torch.manual_seed(seed)
        set_train_mode(work)  # frozen BatchNorm layers keep their statistics
        for i, lr in enumerate(rates(start, end, steps)):
            for group, k in zip(optimizer.param_groups, scale, strict=True):
                group["lr"] = k * lr
            x, y = next(batches)
            value = loss(work(x.to(device)), y.to(device))
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()

            value = value.item()
            average = smoothing * average + (1 - smoothing) * value
            lrs.append(lr)
            losses.append(value)
            smoothed.append(average / (1 - smoothing ** (i + 1)))
            if not math.isfinite(smoothed[-1]) or smoothed[-1] > diverge * min(smoothed):
                stopped = True
                break
    return _suggest(lrs, losses, smoothed, stopped, skip=steps // 10)


def _sgd(momentum: float) -> OptimizerFactory:
    return lambda params, lr: SGD(params, lr=lr, momentum=momentum)


def _forever(loader: Iterable) -> Iterator:
    """The loader's batches, epoch after epoch (each epoch in a new order)."""
    return itertools.chain.from_iterable(iter(loader) for _ in itertools.count())


def steepest_index(lrs: list[float], smoothed: list[float], skip: int = 0) -> int | None:
    """Index of the most negative slope ``d smoothed / d log(lr)`` between ``skip`` and the
    minimum (central differences inside, one-sided at the ends, as ``numpy.gradient``); None
    when the minimum comes at or before ``skip`` (the loss never fell after it).

    The first points are skipped because there the moving average has seen only a few noisy
    losses, and a lucky minibatch looks like a steep descent (fastai skips the first 10%).
    """
    low = min(range(len(smoothed)), key=smoothed.__getitem__)
    if low <= skip:
        return None
    x = [math.log(r) for r in lrs[:low + 1]]
    y = smoothed[:low + 1]
    slopes = {i: (y[min(i + 1, low)] - y[max(i - 1, 0)]) / (x[min(i + 1, low)] - x[max(i - 1, 0)])
              for i in range(skip, low + 1)}
    return min(slopes, key=slopes.__getitem__)


def _suggest(lrs: list[float], losses: list[float], smoothed: list[float],
             stopped: bool, skip: int) -> LRFind:
    finite = [i for i, s in enumerate(smoothed) if math.isfinite(s)]
    if not finite:
        raise FloatingPointError(f"lr_find: the loss was not finite from the first step "
                                 f"(lr={lrs[0]:g}); lower start, or check the data and model")
    kept = finite[-1] + 1  # a non-finite value can only be the last (the test stops there)
    low = min(range(kept), key=smoothed.__getitem__)
    min_rate = lrs[low]
    steep = steepest_index(lrs[:kept], smoothed[:kept], skip)
    if steep is not None:
        rule = (f"min / 10: the smoothed loss is lowest at lr={min_rate:.3g}, and a tenth of "
                f"that is {min_rate / 10:.3g} (it falls fastest at lr={lrs[steep]:.3g}, the "
                "steepest rule)")
    else:
        rule = (f"min / 10: {min_rate / 10:.3g}, a tenth of lr={min_rate:.3g}, where the "
                f"smoothed loss is lowest; but it never fell after the first {skip} steps, so "
                "start the test lower, or check that the model can learn")
    if low == kept - 1 and not stopped:
        rule += (f"; the loss was still falling at the last rate, {lrs[-1]:.3g}: the minimum "
                 "may lie beyond it, so raise end")
    return LRFind(lrs=lrs, losses=losses, smoothed=smoothed, suggestion=min_rate / 10,
                  rule=rule, steepest=None if steep is None else lrs[steep], min_rate=min_rate,
                  min_over_10=min_rate / 10, stopped_early=stopped)
