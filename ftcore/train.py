"""Training and evaluation: ``fit``, ``evaluate``, ``predict`` and the ``History`` they record.

``fit`` is the loop every lesson uses. Per batch it does the four steps of gradient descent::

    logits = model(x)                    # forward
    loss   = cross_entropy(logits, y)    # (+ an optional penalty on the weights)
    loss.backward()                      # gradients by autograd
    optimizer.step()                     # ftcore.optim.SGD by default

and per epoch it records the training and validation loss and accuracy.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .augment import augment_batch
from .data import ImageSet, make_loader
from .optim import SGD
from .runtime import pick_device, progress_enabled

SCHEDULES = ("constant", "cosine")


@dataclass
class History:
    """What ``fit`` measured: one record per epoch, plus how training ended.

    Each record has ``epoch``, ``train_loss``, ``train_acc``, ``seconds`` and, when a
    validation set was given, ``val_loss`` and ``val_acc``.
    """

    records: list[dict] = field(default_factory=list)
    best_epoch: int | None = None  # lowest validation loss (None without a validation set)
    stopped_early: bool = False

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
        lr: float = 0.05, momentum: float = 0.9, weight_decay: float = 0.0,
        nesterov: bool = False, batch_size: int = 64,
        optimizer: torch.optim.Optimizer | None = None,
        penalty: Callable[[nn.Module], torch.Tensor] | None = None,
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
        lr_schedule: str = "constant", patience: int | None = None, seed: int = 0,
        device=None, progress: bool | None = None) -> History:
    """Train ``model`` on ``train`` with cross-entropy and return its :class:`History`.

    Args:
        model: maps images (N, 1, 28, 28) to logits (N, num_classes). Trained in place.
        train, val: :class:`ImageSet` s; ``val`` is evaluated after every epoch.
        epochs, batch_size: how long and in what chunks.
        lr, momentum, weight_decay, nesterov: settings of the default optimizer,
            :class:`ftcore.optim.SGD` over the trainable (``requires_grad``) parameters.
        optimizer: use this instead (then the four settings above are ignored).
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
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("fit: the model has no trainable parameters (every parameter has "
                         "requires_grad=False), so training would change nothing. Unfreeze "
                         "a part first, e.g. ftcore.surgery.unfreeze(model, 'head').")
    if epochs < 1:
        raise ValueError(f"epochs={epochs} must be >= 1")
    if patience is not None and (val is None or patience < 1):
        raise ValueError("patience (early stopping) needs a validation set (val=...) and "
                         f"patience >= 1, got val={'given' if val else None}, {patience=}")
    if lr_schedule not in SCHEDULES:
        raise ValueError(f"lr_schedule={lr_schedule!r} is not one of {', '.join(SCHEDULES)}")
    device = pick_device(device)
    model.to(device)
    check_labels(model, train, device)
    if val is not None:
        check_labels(model, val, device)
    if optimizer is None:
        optimizer = SGD(trainable, lr=lr, momentum=momentum, weight_decay=weight_decay,
                        nesterov=nesterov)
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
                objective = loss + penalty(model) if penalty is not None else loss
                optimizer.zero_grad(set_to_none=True)
                objective.backward()
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                loss_sum += loss.detach() * len(y)  # summed on the device: no sync per batch
                correct += (logits.detach().argmax(dim=1) == y).sum()
            record = {"epoch": epoch, "train_loss": loss_sum.item() / len(train),
                      "train_acc": correct.item() / len(train)}
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
    if val is not None:
        losses = history.column("val_loss")
        history.best_epoch = history.records[losses.index(min(losses))]["epoch"]
    model.eval()
    return history


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
    if isinstance(images, ImageSet):
        images = images.images
    device = pick_device(device)
    was_training = model.training
    model.to(device).eval()
    logits = [model(chunk.to(device)).cpu() for chunk in images.split(batch_size)]
    model.train(was_training)
    return torch.cat(logits)


def evaluate(model: nn.Module, data: ImageSet, batch_size: int = 256, device=None) -> dict:
    """``{"loss": mean cross-entropy, "accuracy": fraction correct}`` on ``data``."""
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
