"""ftcore.plots: every function returns a Figure that shows what it was given."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix

from ftcore.plots import (
    plot_confusion_matrix,
    plot_filters,
    plot_history,
    plot_lr_schedules,
    show_images,
)
from ftcore.train import History

RED, BLACK = to_rgba("red"), to_rgba("black")


def history(losses, accs, val=True) -> History:
    records = []
    for epoch, (loss, acc) in enumerate(zip(losses, accs, strict=True), start=1):
        record = {"epoch": epoch, "train_loss": loss, "train_acc": acc}
        if val:
            record.update(val_loss=loss + 0.1, val_acc=acc - 0.1)
        records.append(record)
    return History(records)


def visible(fig: Figure) -> list:
    """The axes that show something (hidden spare cells of a grid excluded)."""
    return [ax for ax in fig.axes if ax.images or ax.lines]


def test_plot_history_one_run():
    h = history([2.0, 1.0, 0.5], [0.3, 0.6, 0.9])
    fig = plot_history(h, title="run")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    loss_ax, acc_ax = fig.axes
    assert loss_ax.get_ylabel() == "loss" and acc_ax.get_ylabel() == "accuracy"
    assert [line.get_label() for line in loss_ax.lines] == ["train", "val"]
    train, val = loss_ax.lines
    assert list(train.get_xdata()) == [1, 2, 3] and list(train.get_ydata()) == [2.0, 1.0, 0.5]
    assert list(val.get_ydata()) == pytest.approx([2.1, 1.1, 0.6])
    assert train.get_linestyle() == "-" and val.get_linestyle() == "--"
    assert list(acc_ax.lines[0].get_ydata()) == [0.3, 0.6, 0.9]
    assert fig.get_suptitle() == "run"


def test_plot_history_compares_runs_and_accepts_records():
    runs = {"scratch": history([2.0, 1.5], [0.2, 0.4]),
            "fine-tuned": history([1.0, 0.5], [0.7, 0.9], val=False).records}
    fig = plot_history(runs, metrics=("acc",))
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines] == ["scratch train", "scratch val",
                                                       "fine-tuned train"]
    assert ax.lines[0].get_color() == ax.lines[1].get_color() != ax.lines[2].get_color()
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {
        "scratch train", "scratch val", "fine-tuned train"}


def test_show_images_titles_wrong_predictions_in_red():
    images = torch.rand(12, 1, 28, 28)
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1])
    predictions = labels.clone()
    predictions[[2, 7]] = torch.tensor([5, 1])
    classes = [f"digit {d}" for d in range(10)]
    fig = show_images(images, labels, predictions, classes, ncols=5)
    assert len(fig.axes) == 15 and len(visible(fig)) == 12  # a 3 x 5 grid, 3 cells unused
    shown = visible(fig)
    for i, ax in enumerate(shown):
        assert np.allclose(ax.images[0].get_array(), images[i, 0].numpy())
        title = ax.title
        if i in (2, 7):
            assert to_rgba(title.get_color()) == RED
            assert title.get_text() == f"{classes[predictions[i]]} ({classes[labels[i]]})"
        else:
            assert to_rgba(title.get_color()) == BLACK
            assert title.get_text() == classes[labels[i]]


def test_show_images_with_labels_only_and_3d_input():
    fig = show_images(torch.rand(3, 28, 28), labels=[4, 5, 6])
    assert len(fig.axes) == 3
    assert [ax.get_title() for ax in fig.axes] == ["4", "5", "6"]
    assert show_images(torch.rand(2, 28, 28)).axes[0].get_title() == ""


def test_plot_confusion_matrix_shows_sklearns_counts():
    labels = [0, 0, 1, 1, 2, 2, 2]
    predictions = [0, 1, 1, 1, 2, 0, 2]
    fig = plot_confusion_matrix(labels, predictions, classes=["a", "b", "c"], title="cm")
    assert len(fig.axes) == 1  # no colour bar
    ax = fig.axes[0]
    assert ax.get_title() == "cm"
    assert np.array_equal(ax.images[0].get_array(), confusion_matrix(labels, predictions))
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert plot_confusion_matrix(labels, predictions).axes[0].get_title() == "confusion matrix"


def test_plot_filters_draws_each_kernel_on_its_own_scale():
    weight = torch.randn(10, 3, 3, 3)
    fig = plot_filters(weight, ncols=4, title="conv1")
    assert len(fig.axes) == 12 and len(visible(fig)) == 10
    for kernel, ax in zip(weight[:, 0], visible(fig), strict=True):
        image = ax.images[0]
        assert np.allclose(image.get_array(), kernel.numpy())
        bound = float(kernel.abs().max())
        assert image.get_clim() == pytest.approx((-bound, bound))
    assert fig.get_suptitle() == "conv1"


def test_plot_means_draws_a_bar_and_an_error_bar_per_mean():
    from ftcore.plots import plot_means
    from ftcore.sweep import summary

    runs = [{"strategy": s, "seed": k, "acc": a}
            for s, accs in (("full", (0.8, 0.9)), ("scratch", (0.5, 0.7)))
            for k, a in enumerate(accs)]
    fig = plot_means(summary(runs, "strategy", "acc"), "strategy", chance=0.1)
    ax = fig.axes[0]
    heights = sorted(p.get_height() for p in ax.patches)
    assert heights == pytest.approx([0.6, 0.85])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["full", "scratch"]
    with pytest.raises(ValueError, match="no rows"):
        plot_means([], "strategy")


def test_plot_lr_find_draws_both_losses_on_a_log_axis_and_marks_the_suggestion():
    from types import SimpleNamespace

    from ftcore.plots import plot_lr_find

    lrs = [1e-4 * 10 ** (i / 4) for i in range(17)]
    losses = [2.3 - 0.1 * i if i < 12 else 1.2 + (i - 11) ** 2 for i in range(17)]
    result = SimpleNamespace(lrs=lrs, losses=losses, smoothed=losses, suggestion=lrs[11] / 10,
                             steepest=lrs[5], rule="min / 10: ...")
    fig = plot_lr_find(result)
    ax, = fig.axes
    assert ax.get_xscale() == "log" and ax.get_ylim()[1] == pytest.approx(1.5 * 2.3)
    labels = [line.get_label() for line in ax.lines]
    assert labels == ["loss (one batch)", "smoothed loss", f"suggestion {lrs[11] / 10:.2g}",
                      f"steepest {lrs[5]:.2g}"]
    assert list(ax.lines[2].get_xdata()) == [lrs[11] / 10] * 2  # the dashed vertical line
    assert list(ax.lines[1].get_ydata()) == losses
    no_steepest = plot_lr_find(SimpleNamespace(**{**vars(result), "steepest": None}))
    assert len(no_steepest.axes[0].lines) == 3


def test_plot_lr_schedules_draws_each_schedule_and_the_epoch_boundaries():
    rates = {"constant": [0.1] * 6, "step": [0.1, 0.1, 0.1, 0.01, 0.01, 0.01]}
    fig = plot_lr_schedules(rates, steps_per_epoch=2, title="two")
    ax = fig.axes[0]
    curves = [line for line in ax.lines if line.get_label() in rates]
    assert [line.get_label() for line in curves] == ["constant", "step"]
    assert list(curves[1].get_xdata()) == list(range(6))
    assert list(curves[1].get_ydata()) == rates["step"]
    boundaries = [line.get_xdata()[0] for line in ax.lines if line not in curves]
    assert boundaries == [2, 4]                      # epochs start at steps 2 and 4
    assert ax.get_ylabel() == "learning rate" and ax.get_title() == "two"
    with pytest.raises(ValueError, match="non-empty dict"):
        plot_lr_schedules({})
