"""Training and evaluation: ``fit``, ``evaluate``, ``predict`` and the ``History`` they record.

``fit`` is the loop every lesson uses. Per batch it does the four steps of gradient descent::

    logits = model(x)                    # forward
    loss   = cross_entropy(logits, y)    # (+ an optional penalty on the weights)
    loss.backward()                      # gradients by autograd
    optimizer.step()                     # ftcore.optim.SGD by default (or Adam, AdamW)

and per epoch it records the training and validation loss and accuracy.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .augment import augment_batch
from .checks import ParameterError, check_choice, check_int, check_type
from .data import ImageSet, make_loader
from .optim import OPTIMIZERS, make_optimizer, optimizer_settings
from .runtime import pick_device, progress_enabled

SCHEDULES = ("constant", "cosine")
DIVERGENCE = ("raise", "stop", "continue")
#: An epoch's mean training loss above this counts as diverged (chance level is ln(C), 2.3
#: for ten classes: a cross-entropy of 10,000 means logits thrown thousands of units apart).
LOSS_LIMIT = 1e4


@dataclass
class History:
    """What ``fit`` measured: one record per epoch, plus how training ended.

    Each record has ``epoch``, ``train_loss``, ``train_acc``, ``seconds`` and, when a
    validation set was given, ``val_loss`` and ``val_acc``.
    """

    records: list[dict] = field(default_factory=list)
    best_epoch: int | None = None  # lowest validation loss (None without a validation set)
    stopped_early: bool = False
    diverged: bool = False  # the loss became non-finite or huge (with on_divergence="stop")

    def column(self, key: str) -> list[float]:
        """One quantity over the epochs, e.g. ``history.column("val_acc")``."""
        if self.records and key not in self.records[0]:
            raise KeyError(f"history has no {key!r}; it has {sorted(self.records[0])}")
        return [r[key] for r in self.records]

    @property
    def last(self) -> dict:
        return self.records[-1]

    def __len__(self) -> int:
        return len(self.records)


def fit(model: nn.Module, train: ImageSet, val: ImageSet | None = None, *, epochs: int = 10,
        lr: float | None = None, momentum: float | None = None,
        weight_decay: float | None = None, nesterov: bool | None = None, batch_size: int = 64,
        optimizer: str | torch.optim.Optimizer = "sgd",
        penalty: Callable[[nn.Module], torch.Tensor] | None = None,
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
        lr_schedule: str = "constant", patience: int | None = None, seed: int = 0,
        device=None, progress: bool | None = None, on_divergence: str = "raise") -> History:
    """Train ``model`` on ``train`` with cross-entropy and return its :class:`History`.

    Args:
        model: maps images (N, 1, 28, 28) to logits (N, num_classes). Trained in place.
        train, val: :class:`ImageSet` s; ``val`` is evaluated after every epoch.
        epochs, batch_size: how long and in what chunks.
        optimizer: ``"sgd"`` (default), ``"adam"`` or ``"adamw"``: :class:`ftcore.optim.SGD`,
            :class:`~ftcore.optim.Adam` or :class:`~ftcore.optim.AdamW` over the trainable
            (``requires_grad``) parameters, built with the four settings below
            (:func:`ftcore.optim.make_optimizer`). Or an optimizer you built, e.g. with
            parameter groups; then leave the four settings unset (passing one is an error:
            it would be ignored).
        lr: learning rate; default 0.05 for SGD, 1e-3 for Adam and AdamW.
        weight_decay: default 0, except AdamW's 1e-2 (decoupled; SGD's and Adam's is L2).
        momentum, nesterov: SGD's alone (default 0.9 and False). With ``"adam"`` or
            ``"adamw"`` setting either is an error: Adam's momentum is its ``betas[0]``.
        penalty: ``penalty(model)`` returns a scalar added to the loss (e.g. an L2 term,
            :mod:`ftcore.regularization`).
        augment: a transform of ONE image (1, 28, 28) -> (1, 28, 28), e.g.
            :func:`ftcore.augment.small_affine`; applied to every training image separately,
            with fresh random parameters each epoch (:func:`ftcore.augment.augment_batch`).
            Validation images are never augmented.
        lr_schedule: ``"constant"``, or ``"cosine"`` to anneal every group's learning rate
            to 0 over the run, batch by batch (``torch.optim.lr_scheduler.CosineAnnealingLR``).
        patience: early stopping: stop after this many epochs without a lower validation
            loss, and restore the weights of the best epoch. Needs ``val``.
        seed: fixes the batch order and dropout masks: the same seed, the same run.
        device: ``"cpu"``, ``"cuda"``, ...; default: the best available (:func:`pick_device`).
        progress: show a tqdm bar; default on, except under CI or ``FTCORE_PROGRESS=0``.
        on_divergence: what to do when an epoch's training loss is NaN, inf or above
            ``LOSS_LIMIT`` (the weights are then ruined): ``"raise"`` (default) stops with a
            ``FloatingPointError`` naming the epoch and the learning rate; ``"stop"`` ends
            training, marks ``history.diverged`` and returns, so a learning-rate sweep can
            record a too-large rate as a result; ``"continue"`` marks ``history.diverged``
            and trains on, for a sweep that shows what a too-large rate does over the whole
            run (lesson 04's rate grid).

    Every argument is checked before any work, and before the model is changed.
    """
    check_type(model, "model", nn.Module)
    _check_set(train, "train")
    if val is not None:
        _check_set(val, "val", hint="epochs, lr and the others are keyword arguments, e.g. "
                                    "fit(model, train, epochs=5)" if not hasattr(val, "__len__")
                   else "")
    epochs = check_int(epochs, "epochs", low=1, hint="e.g. epochs=5")
    batch_size = check_int(batch_size, "batch_size", low=1, hint="e.g. batch_size=64")
    seed = check_int(seed, "seed", low=0, hint="e.g. seed=0")
    if patience is not None:
        patience = check_int(patience, "patience", low=1, hint="e.g. patience=3, or None")
        if val is None:
            raise ParameterError("early stopping needs a validation set: pass val=... with "
                                 f"patience={patience}")
    check_choice(lr_schedule, "lr_schedule", SCHEDULES)
    check_choice(on_divergence, "on_divergence", DIVERGENCE)
    for name, function in (("penalty", penalty), ("augment", augment)):
        if function is not None and not callable(function):
            raise ParameterError(f"{name}={function!r} must be a function or None")
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ParameterError("fit: the model has no trainable parameters (every parameter has "
                             "requires_grad=False), so training would change nothing. Unfreeze "
                             "a part first, e.g. ftcore.surgery.unfreeze(model, 'head').")
    settings = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay,
                "nesterov": nesterov}
    if optimizer is None:  # the default before optimizers had names
        optimizer = "sgd"
    if isinstance(optimizer, str):
        optimizer_settings(optimizer, **settings)  # checked now, built once the model is moved
    else:
        _check_optimizer(optimizer, trainable, settings)
    device = pick_device(device)
    model.to(device)
    check_labels(model, train, device)
    if val is not None:
        check_labels(model, val, device)
    if isinstance(optimizer, str):
        optimizer = make_optimizer(optimizer, trainable, **settings)
    loader = make_loader(train, batch_size=batch_size, shuffle=True, seed=seed)
    scheduler = None
    if lr_schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * len(loader))
    history = History()
    best_loss, best_state, waited = float("inf"), None, 0

    with torch.random.fork_rng(devices=[]):  # seed dropout here without touching the caller's RNG
        torch.manual_seed(seed)
        bar = tqdm(range(1, epochs + 1), desc="fit", unit="epoch",
                   disable=not progress_enabled(progress))
        for epoch in bar:
            start = time.perf_counter()
            set_train_mode(model)
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.int64)
            for x, y in loader:
                if augment is not None:
                    x = augment_batch(augment, x)
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                logits = model(x)
                loss = F.cross_entropy(logits, y)
                objective = loss + _penalty(penalty, model) if penalty is not None else loss
                optimizer.zero_grad(set_to_none=True)
                objective.backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                loss_sum += loss.detach() * len(y)  # summed on the device: no sync per batch
                correct += (logits.detach().argmax(dim=1) == y).sum()
            record = {"epoch": epoch, "train_loss": loss_sum.item() / len(train),
                      "train_acc": correct.item() / len(train)}
            if not record["train_loss"] <= LOSS_LIMIT:  # NaN, inf or huge: the run diverged
                if on_divergence == "raise":
                    raise FloatingPointError(_divergence_message(record, optimizer))
                history.diverged = True
            if history.diverged and on_divergence == "stop":
                history.records.append({**record, **({"val_loss": math.nan, "val_acc": math.nan}
                                                     if val is not None else {}),
                                        "seconds": time.perf_counter() - start})
                break
            if val is not None:
                scores = evaluate(model, val, device=device)
                record.update(val_loss=scores["loss"], val_acc=scores["accuracy"])
            record["seconds"] = time.perf_counter() - start
            history.records.append(record)
            bar.set_postfix({k: f"{v:.3f}" for k, v in record.items() if "_" in k})

            if patience is not None:
                if record["val_loss"] < best_loss:
                    best_loss, waited = record["val_loss"], 0
                    best_state = copy.deepcopy(model.state_dict())
                else:
                    waited += 1
                    if waited >= patience:
                        history.stopped_early = True
                        break
        bar.close()
    if best_state is not None:  # early stopping: back to the best epoch's weights
        model.load_state_dict(best_state)
    finite = [r for r in history.records if math.isfinite(r.get("val_loss", math.nan))]
    if finite:
        history.best_epoch = min(finite, key=lambda r: r["val_loss"])["epoch"]
    model.eval()
    return history


def _check_set(data, name: str, hint: str = "") -> None:
    check_type(data, name, ImageSet, hint=hint or (
        "wrap images (N, 1, 28, 28) in [0, 1] and int64 labels as "
        "ftcore.data.ImageSet(images, labels, classes)"))


def _check_optimizer(optimizer, trainable: list[torch.Tensor], settings: dict) -> None:
    """The optimizer must hold some of the model's trainable parameters, else fit would
    train nothing and report a normal-looking history; and settings given beside it would be
    ignored, so they are refused."""
    check_type(optimizer, "optimizer", (str, torch.optim.Optimizer),
               hint=f"one of {', '.join(map(repr, OPTIMIZERS))}, or e.g. "
                    "optimizer=ftcore.optim.SGD(model.parameters(), lr=0.05)")
    given = [f"{k}={v!r}" for k, v in settings.items() if v is not None]
    if given:
        raise ParameterError(
            f"fit: {', '.join(given)} would be ignored: the optimizer given "
            f"({type(optimizer).__name__}) has its own settings. Set them when building it, "
            f"or pass its name instead, e.g. optimizer='sgd', {given[0]}")
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    if not any(id(p) in held for p in trainable):
        raise ParameterError(
            "fit: the optimizer holds none of the model's trainable parameters, so training "
            "would change nothing. Build it from this model after any replace_head or freeze, "
            "e.g. optimizer=SGD(model.parameters(), lr=0.05)")


def _penalty(penalty: Callable[[nn.Module], torch.Tensor], model: nn.Module):
    """``penalty(model)``, checked to be a number or a one-element tensor."""
    value = penalty(model)
    if isinstance(value, torch.Tensor) and value.numel() != 1:
        raise ParameterError(f"penalty {getattr(penalty, '__name__', penalty)!r} returned a "
                             f"tensor of shape {tuple(value.shape)}; it must return a scalar "
                             "(sum the terms, e.g. sum(p.pow(2).sum() for p in ...))")
    if not isinstance(value, (torch.Tensor, int, float)):
        raise ParameterError(f"penalty returned {type(value).__name__}; it must return a "
                             "scalar tensor (or a number)")
    return value.reshape(()) if isinstance(value, torch.Tensor) else value


def _divergence_message(record: dict, optimizer: torch.optim.Optimizer) -> str:
    rates = sorted({group["lr"] for group in optimizer.param_groups})
    lr = f"lr={rates[0]:g}" if len(rates) == 1 else f"learning rates {rates}"
    return (f"fit: training diverged in epoch {record['epoch']}: the mean training loss is "
            f"{record['train_loss']:.3g} (NaN, inf or above {LOSS_LIMIT:g}) with {lr}. The "
            "model's weights are now unusable: rebuild or reload it, and lower the learning "
            f"rate (e.g. lr={rates[0] / 10:g}). To record a divergence as a result instead "
            "(e.g. in a learning-rate sweep), pass on_divergence='stop'.")


def set_train_mode(model: nn.Module) -> None:
    """``model.train()``, except that BatchNorm layers whose parameters are frozen stay in
    evaluation mode, so their running statistics stay fixed too (a classic fine-tuning trap:
    in train mode BatchNorm keeps updating its statistics even when its weights are frozen)."""
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine \
                and not module.weight.requires_grad:
            module.eval()


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor | ImageSet, batch_size: int = 256,
            device=None) -> torch.Tensor:
    """Logits (N, num_classes) on the CPU for images (N, 1, 28, 28), in evaluation mode."""
    check_type(model, "model", nn.Module)
    if isinstance(images, ImageSet):
        images = images.images
    check_type(images, "images", torch.Tensor, hint="pass an ImageSet or a tensor "
                                                    "(N, 1, 28, 28)")
    batch_size = check_int(batch_size, "batch_size", low=1, hint="e.g. batch_size=256")
    device = pick_device(device)
    was_training = model.training
    model.to(device).eval()
    logits = [model(chunk.to(device)).cpu() for chunk in images.split(batch_size)]
    model.train(was_training)
    return torch.cat(logits)


def evaluate(model: nn.Module, data: ImageSet, batch_size: int = 256, device=None) -> dict:
    """``{"loss": mean cross-entropy, "accuracy": fraction correct}`` on ``data``."""
    check_type(model, "model", nn.Module)
    _check_set(data, "data")
    check_labels(model, data, pick_device(device))
    logits = predict(model, data, batch_size, device)
    return {"loss": F.cross_entropy(logits, data.labels).item(),
            "accuracy": (logits.argmax(dim=1) == data.labels).float().mean().item()}


def check_labels(model: nn.Module, data: ImageSet, device) -> None:
    """Raise ``ValueError`` if ``data`` has labels the model's output cannot represent."""
    if len(data) == 0:
        raise ValueError(f"{data.name} is empty: there is nothing to train or evaluate on")
    was_training = model.training
    model.eval()
    with torch.no_grad():
        outputs = model(data.images[:1].to(device)).shape[-1]
    model.train(was_training)
    top = int(data.labels.max())
    if top >= outputs:
        raise ValueError(
            f"{data.name} has labels up to {top} ({data.num_classes} classes) but the model "
            f"outputs {outputs} classes. Replace the head to match, e.g. "
            f"ftcore.surgery.replace_head(model, {data.num_classes}).")


def confident_mistakes(logits: torch.Tensor, labels: torch.Tensor, k: int = 10) -> torch.Tensor:
    """Indices of the ``k`` wrong predictions made with the highest confidence.

    Args:
        logits: (N, C). labels: (N,).
    Returns:
        int64 (min(k, number of mistakes),), most confident first.
    """
    confidence, predicted = logits.softmax(dim=1).max(dim=1)
    wrong = (predicted != labels).nonzero().squeeze(1)
    return wrong[confidence[wrong].argsort(descending=True)[:k]]
