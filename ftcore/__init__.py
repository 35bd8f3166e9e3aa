"""ftcore: fine-tuning neural networks from first principles.

The book's library, one concept per module (arrows point down only)::

    cli, exercises         faces: ``python -m ftcore``, exercise checks and the student edition
    plots                  figures from results (histories, tables, accuracy matrices)
    continual, remedies    catastrophic forgetting: task sequences, metrics, replay, EWC
    shifts                 domain mismatch: MNIST-C-style corruptions, shift detectors
    transfer, sweep        experiment grids that return plain records
    unfreezing             the head first: LP-FT and gradual unfreezing as stages
    surgery                replace_head, freeze/unfreeze, param_groups, strategies, distortion
    regularization         L1, L2 and L2-SP penalties for ``fit(penalty=...)``
    pretrained             the cached MNIST-pre-trained CNN, checkpoints
    lr_find                the learning-rate range test
    train, augment         fit, evaluate, predict, History; per-image augmentation
    models                 SmallCNN and MLP with named ``features`` and ``head``
    nn, optim              first principles: Dropout, SGD, Adam, AdamW
    parallel               independent runs on every core or a cluster (joblib)
    allocator              the CPU allocator: processes of ours reuse freed memory (speed)
    names                  the names experiments accept (imports nothing heavy)
    data                   MNIST (subset / full), UCI digits, Fashion-MNIST, splits, loaders
"""

import importlib

__version__ = "0.1.0"

#: What ``from ftcore import X`` gives, and the module that defines it. Imported on first use
#: (PEP 562), so ``import ftcore`` and ``python -m ftcore --help`` do not wait for PyTorch.
_EXPORTS = {
    "SGD": "optim", "Adam": "optim", "AdamW": "optim", "Dropout": "nn", "History": "train",
    "evaluate": "train", "fit": "train",
    "predict": "train", "ImageSet": "data", "load_dataset": "data", "make_loader": "data",
    "per_class": "data", "SmallCNN": "models", "count_parameters": "models",
    "PretrainConfig": "pretrained", "load_checkpoint": "pretrained",
    "pretrained_cnn": "pretrained", "save_checkpoint": "pretrained", "pick_device": "runtime",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ftcore' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value  # the next look-up is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
