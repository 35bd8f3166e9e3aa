"""ftcore: fine-tuning neural networks from first principles.

The book's library, one concept per module (arrows point down only)::

    cli, exercises         faces: ``python -m ftcore``, exercise checks and the student edition
    plots                  figures from results (histories, tables, accuracy matrices)
    continual, remedies    catastrophic forgetting: task sequences, metrics, replay, EWC
    shifts                 domain mismatch: MNIST-C-style corruptions, shift detectors
    transfer, sweep        experiment grids that return plain records
    surgery                replace_head, freeze/unfreeze, param_groups, strategies
    regularization         L1, L2 and L2-SP penalties for ``fit(penalty=...)``
    pretrained             the cached MNIST-pre-trained CNN, checkpoints
    train, augment         fit, evaluate, predict, History; per-image augmentation
    models                 SmallCNN and MLP with named ``features`` and ``head``
    nn, optim              first principles: Dropout, SGD
    data                   MNIST (subset / full), UCI digits, Fashion-MNIST, splits, loaders
"""

from .data import ImageSet, load_dataset, make_loader, per_class
from .models import SmallCNN, count_parameters
from .nn import Dropout
from .optim import SGD
from .pretrained import PretrainConfig, load_checkpoint, pretrained_cnn, save_checkpoint
from .runtime import pick_device
from .train import History, evaluate, fit, predict

__version__ = "0.1.0"

__all__ = ["SGD", "Dropout", "History", "ImageSet", "PretrainConfig", "SmallCNN",
           "count_parameters", "evaluate", "fit", "load_checkpoint", "load_dataset",
           "make_loader", "per_class", "pick_device", "predict", "pretrained_cnn",
           "save_checkpoint"]
