"""Figures from results: learning curves, image grids, confusion matrices, filters.

Every function takes plain results (histories, tensors, label lists), draws on matplotlib,
and returns the ``Figure`` so a lesson can save it or test what it shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch


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
    from sklearn.metrics import ConfusionMatrixDisplay  # here: sklearn is slow to import

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


def plot_accuracy_matrices(results, ncols: int = 3, title: str | None = None):
    """Heatmaps of continual-learning accuracy matrices, one panel per result.

    Args:
        results: a sequence of results with ``label``, ``tasks`` (names) and ``accuracy``
            (R, rows of floats: ``R[i][j]`` = accuracy on task j after training on task i),
            such as :class:`ftcore.continual.SequenceResult`.
    Each cell shows R[i][j] in percent; below the diagonal is what was kept, above it what
    was never learned yet.
    """
    results = list(results)
    ncols = max(1, min(ncols, len(results)))
    nrows = -(-len(results) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.3 * ncols, 3.1 * nrows + 0.4), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[len(results):]:
        ax.axis("off")
    for ax, result in zip(axes.flat, results, strict=False):
        R = np.asarray(result.accuracy, dtype=float)
        image = ax.imshow(R, cmap="viridis", vmin=0, vmax=1)
        for (i, j), value in np.ndenumerate(R):
            ax.text(j, i, f"{100 * value:.0f}", ha="center", va="center", fontsize=8,
                    color="black" if value > 0.6 else "white")
        ticks = range(len(result.tasks))
        ax.set_xticks(ticks, result.tasks, fontsize=7, rotation=45 * (len(result.tasks) > 3))
        ax.set_yticks(ticks, result.tasks, fontsize=7)
        ax.set_xlabel("tested on task j", fontsize=8)
        ax.set_ylabel("after training task i", fontsize=8)
        ax.set_title(result.label, fontsize=10)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="accuracy")
    if title:
        fig.suptitle(title)
    return fig


def plot_task_curves(results, title: str | None = None):
    """Accuracy on every task while a sequence is trained, one panel per result.

    Args:
        results: a sequence of results with ``label``, ``tasks`` and ``curve`` records
            ``{"task": i, "step": s, "accuracy": [per task]}`` (``run_sequence(...,
            eval_every=k)``). The x axis counts steps over the whole sequence; dotted lines
            mark where a new task starts.
    """
    results = list(results)
    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 3.4), squeeze=False)
    for ax, result in zip(axes[0], results, strict=True):
        offsets, start = {}, 0
        for record in result.curve:  # each task starts where the previous one ended
            offsets.setdefault(record["task"], start)
            start = max(start, offsets[record["task"]] + record["step"])
        x = [offsets[r["task"]] + r["step"] for r in result.curve]
        for j, name in enumerate(result.tasks):
            ax.plot(x, [r["accuracy"][j] for r in result.curve], label=f"task {name}")
        for offset in list(offsets.values())[1:]:
            ax.axvline(offset, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel("SGD steps over the whole sequence")
        ax.set_ylabel("test accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(result.label)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_sweep(rows, x: str, group: str, panel: str | None = None, y: str = "mean",
               band: tuple[str, str] | None = ("min", "max"), logx: bool = False,
               xlabel: str | None = None, ylabel: str = "test accuracy",
               title: str | None = None):
    """Summary rows (one per x, group and panel) as lines with a shaded band, e.g. the mean
    test accuracy over seeds against labels per class, one line per strategy, one panel per
    task, with the band from the worst to the best seed (:func:`ftcore.transfer.summarise`).
    """
    rows = list(rows)
    panels = list(dict.fromkeys(r[panel] for r in rows)) if panel else [None]
    groups = list(dict.fromkeys(r[group] for r in rows))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 1.5, 3.4),
                             squeeze=False, sharey=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, name in zip(axes[0], panels, strict=True):
        for i, g in enumerate(groups):
            line = sorted((r for r in rows if r[group] == g and (panel is None
                                                                   or r[panel] == name)),
                          key=lambda r: r[x])
            xs = [r[x] for r in line]
            ax.plot(xs, [r[y] for r in line], "o-", color=colors[i % len(colors)], label=str(g))
            if band:
                ax.fill_between(xs, [r[band[0]] for r in line], [r[band[1]] for r in line],
                                color=colors[i % len(colors)], alpha=0.15)
        if logx:  # ticks at the measured values, written plainly (1, 5, 50, not 10^0)
            ax.set_xscale("log")
            ticks = sorted({r[x] for r in rows})
            ax.set_xticks(ticks, [str(t) for t in ticks])
            ax.minorticks_off()
        ax.set_xlabel(xlabel or x)
        ax.set_title(str(name) if name is not None else "")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(ylabel)
    axes[0][-1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_means(rows, x: str, group: str | None = None, y: str = "mean",
               band: tuple[str, str] | None = ("min", "max"), ylabel: str = "accuracy",
               title: str | None = None, chance: float | None = None, ax=None):
    """Summary rows (:func:`ftcore.sweep.summary`) as bars of the mean with the spread over
    seeds drawn as an error bar from ``band[0]`` to ``band[1]`` (default: worst to best seed),
    one bar per value of ``x``, side by side per ``group``. ``chance`` draws a dashed line at
    the accuracy of guessing. Returns the figure.
    """
    rows = list(rows)
    if not rows:
        raise ValueError("plot_means: there are no rows to plot")
    xs = list(dict.fromkeys(r[x] for r in rows))
    groups = list(dict.fromkeys(r[group] for r in rows)) if group else [None]
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(xs) * len(groups) + 1.5), 3.4))
    else:
        fig = ax.figure
    width = 0.8 / len(groups)
    for i, g in enumerate(groups):
        line = [next((r for r in rows if r[x] == v and (group is None or r[group] == g)), None)
                for v in xs]
        pos = [j + (i - (len(groups) - 1) / 2) * width for j, r in enumerate(line) if r]
        line = [r for r in line if r]
        means = [r[y] for r in line]
        err = None
        if band:
            err = [[m - r[band[0]] for m, r in zip(means, line, strict=True)],
                   [r[band[1]] - m for m, r in zip(means, line, strict=True)]]
        ax.bar(pos, means, width * 0.9, yerr=err, capsize=3,
               label=str(g) if group else None)
    if chance is not None:
        ax.axhline(chance, color="grey", ls="--", lw=1, label="chance")
    ax.set_xticks(range(len(xs)), [str(v) for v in xs])
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    if group or chance is not None:
        ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_lr_find(result, title: str = "learning-rate range test", ax=None):
    """A learning-rate range test (:func:`ftcore.lr_find.lr_find`): the raw and the smoothed
    loss against the rate on a log axis, the suggested rate as a dashed line and the steepest
    descent as a dot. ``result`` needs ``lrs``, ``losses``, ``smoothed``, ``suggestion``,
    ``steepest`` (or None) and ``rule``. Returns the figure."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
    else:
        fig = ax.figure
    ax.plot(result.lrs, result.losses, color="grey", alpha=0.35, lw=1, label="loss (one batch)")
    ax.plot(result.lrs, result.smoothed, color="C0", lw=2, label="smoothed loss")
    ax.axvline(result.suggestion, color="C3", ls="--", lw=1.5,
               label=f"suggestion {result.suggestion:.2g}")
    if result.steepest is not None:
        i = result.lrs.index(result.steepest)
        ax.plot([result.steepest], [result.smoothed[i]], "o", color="C2",
                label=f"steepest {result.steepest:.2g}")
    finite = [v for v in [*result.losses, *result.smoothed] if np.isfinite(v)]
    if finite and np.isfinite(result.smoothed[0]):  # the blow-up at the end would squash
        top = 1.5 * result.smoothed[0]              # the interesting part of the curve
        ax.set_ylim(min(finite) - 0.05 * abs(top - min(finite)), top)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def plot_lr_schedules(rates: Mapping[str, Sequence[float]], steps_per_epoch: int | None = None,
                      title: str | None = "learning-rate schedules"):
    """Learning-rate schedules as lines of the rate against the step, one per schedule.

    Args:
        rates: ``{name: [rate used at step 0, at step 1, ...]}``, e.g. read from a
            ``torch.optim.lr_scheduler`` with ``scheduler.get_last_lr()`` before each step.
        steps_per_epoch: draw a dotted line at every epoch boundary.
    """
    if not isinstance(rates, Mapping) or not rates:
        raise ValueError("plot_lr_schedules: rates must be a non-empty dict of name -> list of "
                         "learning rates, one per step")
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    for name, values in rates.items():
        values = [float(v) for v in values]
        ax.plot(range(len(values)), values, label=str(name))
    if steps_per_epoch:
        longest = max(len(v) for v in rates.values())
        for boundary in range(steps_per_epoch, longest, steps_per_epoch):
            ax.axvline(boundary, color="grey", ls=":", lw=0.8)
    ax.set_xlabel("step" + (f" (dotted: every epoch of {steps_per_epoch} steps)"
                            if steps_per_epoch else ""))
    ax.set_ylabel("learning rate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
