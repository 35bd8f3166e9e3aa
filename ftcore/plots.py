"""Figures from results: learning curves, image grids, confusion matrices, filters.

Every function takes plain results (histories, tensors, label lists), draws on matplotlib,
and returns the ``Figure`` so a lesson can save it or test what it shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.metrics import ConfusionMatrixDisplay


def _records(history) -> list[dict]:
    return list(getattr(history, "records", history))


def plot_history(histories, metrics: Sequence[str] = ("loss", "acc"), title: str | None = None):
    """Learning curves: one panel per metric, training solid, validation dashed.

    Args:
        histories: a ``History`` (or list of per-epoch dicts), or a mapping
            ``{label: history}`` to compare several runs in one figure.
    """
    if not isinstance(histories, Mapping):
        histories = {"": histories}
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.5), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, metric in zip(axes[0], metrics, strict=True):
        for i, (label, history) in enumerate(histories.items()):
            records = _records(history)
            epochs = [r["epoch"] for r in records]
            color = colors[i % len(colors)]
            for split, style in (("train", "-"), ("val", "--")):
                key = f"{split}_{metric}"
                if records and key in records[0]:
                    ax.plot(epochs, [r[key] for r in records], style, color=color,
                            label=f"{label} {split}".strip())
        ax.set_xlabel("epoch")
        ax.set_ylabel({"acc": "accuracy"}.get(metric, metric))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_images(images: torch.Tensor, labels=None, predictions=None,
                classes: Sequence[str] | None = None, ncols: int = 10, title: str | None = None,
                size: float = 1.1):
    """A grid of grey images (N, 1, H, W) or (N, H, W), each titled with its label and, if
    given, the prediction (red when wrong)."""
    images = torch.as_tensor(images).detach().cpu()
    if images.dim() == 4:
        images = images[:, 0]
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3 * bool(title)),
                             squeeze=False)
    name = (lambda c: classes[int(c)]) if classes is not None else (lambda c: str(int(c)))
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(images[i].numpy(), cmap="gray", vmin=0, vmax=1)
        if predictions is not None:
            wrong = labels is not None and int(predictions[i]) != int(labels[i])
            text = f"{name(predictions[i])}" + (f" ({name(labels[i])})" if wrong else "")
            ax.set_title(text, fontsize=8, color="red" if wrong else "black")
        elif labels is not None:
            ax.set_title(name(labels[i]), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_confusion_matrix(labels, predictions, classes: Sequence[str] | None = None,
                          title: str | None = None):
    """scikit-learn's confusion matrix of true ``labels`` (rows) vs ``predictions``."""
    fig, ax = plt.subplots(figsize=(6, 5))
    ConfusionMatrixDisplay.from_predictions(
        np.asarray(labels), np.asarray(predictions), display_labels=classes, ax=ax,
        colorbar=False, cmap="Blues")
    ax.set_title(title or "confusion matrix")
    fig.tight_layout()
    return fig


def plot_filters(weight: torch.Tensor, ncols: int = 8, title: str = "first-layer filters"):
    """The kernels of a convolution, weight shape (C_out, C_in, k, k), first input channel,
    each scaled to its own range (blue negative, red positive)."""
    w = weight.detach().cpu()[:, 0]
    nrows = -(-len(w) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.0 * ncols, 1.0 * nrows + 0.4),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(w):
            bound = float(w[i].abs().max()) or 1.0
            ax.imshow(w[i].numpy(), cmap="bwr", vmin=-bound, vmax=bound)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
