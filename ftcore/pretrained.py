"""The MNIST-pre-trained CNN that later lessons fine-tune, and its checkpoints.

``pretrained_cnn()`` trains the model deterministically the first time it is asked for and
caches its ``state_dict`` under ``datasets/pretrained/``. The file name carries a hash of the
whole :class:`PretrainConfig`, so changing any setting trains and caches a new model instead of
silently reusing a stale one. Checkpoints are loaded with ``weights_only=True``: loading one
never runs code.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import nn

from .checks import ParameterError, check_choice, check_int, check_number, check_type
from .data import SOURCES, keep_classes, load_dataset
from .data.cache import (
    CorruptFileError,
    atomic_save,
    check_writable,
    data_root,
    require_keys,
    safe_load,
)
from .models import SmallCNN, config_dict
from .names import PRETRAIN_EPOCHS
from .optim import check_hyperparameters
from .train import SCHEDULES, History, fit

CHECKPOINT_FORMAT = "ftcore.SmallCNN/1"
#: Bumped whenever the training code changes the weights a config produces, so caches made by
#: older code are not reused (it is part of every cache key).
RECIPE_VERSION = 2


@dataclass(frozen=True)
class PretrainConfig:
    """Everything that decides the pre-trained weights (and so the cache file's name)."""

    source: str = "mnist"
    classes: tuple[int, ...] = tuple(range(10))  # e.g. (0, 1, 2, 3, 4) to pre-train on 0-4
    width: int = 16
    hidden: int = 128
    dropout: float = 0.25
    batch_norm: bool = True
    epochs: int = PRETRAIN_EPOCHS
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 64
    lr_schedule: str = "cosine"
    seed: int = 0

    def __post_init__(self) -> None:
        """Check every field now, so a bad config fails before minutes of training."""
        check_choice(self.source, "source", SOURCES)
        classes = self.classes
        if isinstance(classes, (str, bytes, int)) or not hasattr(classes, "__iter__"):
            raise ParameterError(f"classes={classes!r} must be a tuple of digit labels, e.g. "
                                 "(0, 1, 2, 3, 4)")
        classes = tuple(check_int(c, "a label in classes", low=0, high=9) for c in classes)
        if len(classes) < 2 or len(set(classes)) != len(classes):
            raise ParameterError(f"classes={self.classes!r} must be at least two distinct "
                                 "labels: a model with one output has nothing to learn (its "
                                 "loss is always 0). E.g. classes=(0, 1, 2, 3, 4)")
        object.__setattr__(self, "classes", classes)  # a list becomes a tuple: hashable key
        for name in ("width", "hidden", "epochs", "batch_size"):
            check_int(getattr(self, name), name, low=1)
        check_int(self.seed, "seed", low=0)
        check_number(self.dropout, "dropout", low=0, high=1, high_open=True)
        check_hyperparameters(lr=self.lr, momentum=self.momentum,
                              weight_decay=self.weight_decay, nesterov=False)
        check_choice(self.lr_schedule, "lr_schedule", SCHEDULES)
        if not isinstance(self.batch_norm, bool):
            raise ParameterError(f"batch_norm={self.batch_norm!r} must be True or False")

    def architecture(self) -> dict:
        """The :class:`~ftcore.models.CNNConfig` (as a dict) a model of this config has."""
        return {"num_classes": len(self.classes), "width": self.width, "hidden": self.hidden,
                "dropout": float(self.dropout), "batch_norm": self.batch_norm}

    def key(self) -> str:
        """A short hash of every field: equal configs, equal keys."""
        text = json.dumps([CHECKPOINT_FORMAT, RECIPE_VERSION, asdict(self)], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def pretrain(config: PretrainConfig = PretrainConfig(), *, root=None, device=None,
             progress: bool | None = None) -> tuple[SmallCNN, History]:
    """Train a :class:`SmallCNN` from scratch as ``config`` says, with ftcore's SGD.

    Returns the model (in eval mode) and its training :class:`History`. Deterministic: the
    same config gives the same weights on the same machine and PyTorch version.
    """
    splits = load_dataset(config.source, root=root)
    train, val = splits.train, splits.val
    if tuple(config.classes) != tuple(range(train.num_classes)):
        train, val = keep_classes(train, config.classes), keep_classes(val, config.classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)  # the initial weights
        model = SmallCNN(len(config.classes), config.width, config.hidden, config.dropout,
                         config.batch_norm)
    history = fit(model, train, val, epochs=config.epochs, lr=config.lr,
                  momentum=config.momentum, weight_decay=config.weight_decay,
                  batch_size=config.batch_size, lr_schedule=config.lr_schedule,
                  seed=config.seed, device=device,
                  progress=progress)
    return model, history


def checkpoint_path(config: PretrainConfig = PretrainConfig(), root=None) -> Path:
    """Where :func:`pretrained_cnn` caches the model for ``config``."""
    return data_root(root) / "pretrained" / f"smallcnn-{config.key()}.pt"


def pretrained_cnn(config: PretrainConfig | None = None, *, root=None, retrain: bool = False,
                   device=None, progress: bool | None = None) -> SmallCNN:
    """The MNIST-pre-trained :class:`SmallCNN` (in eval mode, on the CPU).

    Loaded from the cache when present; otherwise (or with ``retrain=True``, or when the cached
    file is corrupt) trained with :func:`pretrain` and cached, which takes ~20 s on a laptop CPU.
    """
    config = PretrainConfig() if config is None else config
    check_type(config, "config", PretrainConfig, hint="e.g. PretrainConfig(epochs=5)")
    path = checkpoint_path(config, root)
    if path.exists() and not retrain:
        try:
            model = load_checkpoint(path)
            if config_dict(model) == config.architecture():
                return model
            warnings.warn(f"{path} holds a SmallCNN{_signature(config_dict(model))}, not the "
                          f"SmallCNN{_signature(config.architecture())} its config asks for "
                          "(the file was replaced by hand?). Retraining the pre-trained "
                          "model.", stacklevel=2)
        except (CorruptFileError, ValueError) as error:
            warnings.warn(f"{error} Retraining the pre-trained model.", stacklevel=2)
    try:  # check before training, so minutes of work are not lost at the end
        check_writable(path.parent, root)
        writable = True
    except PermissionError as error:
        warnings.warn(f"{error}. Training the pre-trained model anyway and returning it "
                      "WITHOUT caching it: every call will train it again.", stacklevel=2)
        writable = False
    model, history = pretrain(config, root=root, device=device, progress=progress)
    if writable:
        cache_pretrained(model, config, history, root=root)
    return model.cpu()


def cache_pretrained(model: SmallCNN, config: PretrainConfig, history: History,
                     root=None) -> Path:
    """Store a model trained by ``pretrain(config)`` where :func:`pretrained_cnn` looks for it
    (with its config and history, for the record). Returns the file's path."""
    return save_checkpoint(model, checkpoint_path(config, root),
                           pretrain_config=asdict(config), history=history.records)


def save_checkpoint(model: SmallCNN, path, **extra) -> Path:
    """Save the model's configuration and ``state_dict`` (plus plain-data ``extra`` entries,
    e.g. a history) atomically to ``path``."""
    if not isinstance(model, SmallCNN):
        raise TypeError(f"save_checkpoint saves a SmallCNN, got {type(model).__name__}; "
                        "for other models use torch.save(model.state_dict(), path)")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return atomic_save({"format": CHECKPOINT_FORMAT, "model_config": config_dict(model),
                        "state_dict": state, **extra}, path)


def read_checkpoint(path) -> dict:
    """Everything a checkpoint holds, as plain data: ``format``, ``model_config``,
    ``state_dict`` and any extras saved with it (e.g. ``history``, ``pretrain_config``).
    Read with ``weights_only=True``; raises :class:`~ftcore.data.CorruptFileError` if unreadable."""
    blob = safe_load(path)
    if isinstance(blob, dict) and blob and all(isinstance(v, torch.Tensor) for v in blob.values()):
        raise CorruptFileError(
            f"{path} holds a plain state_dict (weights only, no record of the architecture), "
            "not an ftcore checkpoint. Load it into a model of the right shape yourself: "
            "model.load_state_dict(torch.load(path, weights_only=True)), then save it with "
            "ftcore.save_checkpoint(model, path) if you want a checkpoint")
    return require_keys(blob, path, ("format", "model_config", "state_dict"))


def load_checkpoint(path, model: nn.Module | None = None) -> SmallCNN:
    """Load a checkpoint written by :func:`save_checkpoint` (with ``weights_only=True``).

    Without ``model`` a :class:`SmallCNN` of the saved configuration is built. With ``model``,
    its weights are replaced, after checking that it has the same architecture.
    Raises :class:`~ftcore.data.CorruptFileError` for an unreadable file and ``ValueError`` for
    a checkpoint of a different architecture.
    """
    blob = read_checkpoint(path)
    if blob["format"] != CHECKPOINT_FORMAT:
        raise CorruptFileError(f"{path} has format {blob['format']!r}, expected "
                               f"{CHECKPOINT_FORMAT!r}")
    saved = blob["model_config"]
    if model is None:
        known = {f.name for f in fields(SmallCNN(1).config)}
        model = SmallCNN(**{k: v for k, v in saved.items() if k in known})
    elif isinstance(model, SmallCNN) and config_dict(model) != saved:
        raise ValueError(
            f"{path} holds a SmallCNN{_signature(saved)} but the model given is a "
            f"SmallCNN{_signature(config_dict(model))}. Build the model from the checkpoint "
            "with load_checkpoint(path), or load into a model of the same configuration.")
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError as error:
        raise ValueError(f"{path} does not fit a {type(model).__name__}: the checkpoint is for "
                         f"a different architecture ({str(error).splitlines()[0]} ...)") from error
    return model.eval()


def _signature(config: dict) -> str:
    return "(" + ", ".join(f"{k}={v!r}" for k, v in config.items()) + ")"
