"""Tests for ftcore.transfer (strategy grids, Yosinski-style transfer, summaries) and the
figure that shows them, ftcore.plots.plot_sweep. Tiny models and data keep them fast."""

import copy
import math
import re

import pytest
import torch
from helpers import BODY_BLOCKS, tiny_cnn

from ftcore.data import ImageSet, Splits
from ftcore.optim import Adam
from ftcore.plots import plot_sweep
from ftcore.surgery import STRATEGIES, blocks, is_frozen
from ftcore.transfer import (
    TARGETS,
    best_point,
    curve_grid,
    epochs_for,
    learning_curve,
    load_target,
    load_task,
    lookup,
    pivot,
    point_at,
    relative_change,
    strategy_grid,
    summarise,
    train_and_score,
    transfer_first,
)

BODY = BODY_BLOCKS


def tiny_model(seed=0, num_classes=10):
    return tiny_cnn(num_classes, seed).eval()


def tiny_data(per_class=6, classes=5, seed=0, name="tiny"):
    g = torch.Generator().manual_seed(seed)
    n = per_class * classes
    return ImageSet(torch.rand(n, 1, 28, 28, generator=g), torch.arange(n) % classes,
                    tuple(str(c) for c in range(classes)), name)


def same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("steps, n, batch, expected", [(30, 500, 25, 2), (30, 10, 25, 30),
                                                       (20, 500, 25, 1), (30, 100, 25, 8)])
def test_epochs_for_gives_at_least_the_steps(steps, n, batch, expected):
    epochs = epochs_for(steps, n, batch)
    assert epochs == expected
    per_epoch = math.ceil(n / batch)
    assert epochs * per_epoch >= steps > (epochs - 1) * per_epoch


def test_epochs_for_rejects_nonsense():
    with pytest.raises(ValueError, match="steps=0"):
        epochs_for(0, 10, 5)


def test_train_and_score_record():
    model = tiny_model(num_classes=5)
    train, test = tiny_data(), tiny_data(seed=1)
    record = train_and_score(model, train, test, steps=4, batch_size=10, lr=0.05,
                             val=tiny_data(seed=2), seed=0)
    assert record["epochs"] == 2  # 30 examples in batches of 10: 3 steps per epoch
    assert len(record["history"]) == 2 and "val_acc" in record["history"][0]
    assert record["trainable"] == record["total"] == sum(p.numel() for p in model.parameters())
    correct = (model(test.images).argmax(1) == test.labels).float().mean().item()
    assert record["test_acc"] == pytest.approx(correct)


def test_train_and_score_records_a_divergence_when_asked_and_raises_by_default():
    train, test = tiny_data(), tiny_data(seed=1)
    with pytest.raises(FloatingPointError, match="diverged"):
        train_and_score(tiny_model(num_classes=5), train, test, steps=6, batch_size=10, lr=1e6,
                        lr_schedule="constant")
    record = train_and_score(tiny_model(num_classes=5), train, test, steps=6, batch_size=10,
                             lr=1e6, lr_schedule="constant", on_divergence="stop")
    assert record["diverged"] is True and len(record["history"]) == 1  # stopped after epoch 1
    calm = train_and_score(tiny_model(num_classes=5), train, test, steps=4, batch_size=10,
                           lr=0.05)
    assert calm["diverged"] is False


def test_strategy_grid_runs_every_combination_and_leaves_the_model_alone():
    pretrained = tiny_model()
    before = copy.deepcopy(pretrained)
    lr = {"scratch": 0.05, "feature_extraction": 0.1, "partial": 0.05, "full": 0.02}
    records = strategy_grid(pretrained, tiny_data(), tiny_data(seed=1), labels_per_class=(1, 3),
                            seeds=(0, 1), steps=2, batch_size=8, lr=lr, task="t")
    assert len(records) == 2 * 2 * len(STRATEGIES)
    assert same_state(before, pretrained)
    assert {(r["labels_per_class"], r["seed"], r["strategy"]) for r in records} == {
        (n, s, st) for n in (1, 3) for s in (0, 1) for st in STRATEGIES}
    for r in records:
        assert r["task"] == "t" and r["lr"] == lr[r["strategy"]]
        assert 0 <= r["test_acc"] <= 1
    trainable = {r["strategy"]: r["trainable"] for r in records}
    head = 16 * 5 + 5
    assert trainable["feature_extraction"] == head
    assert trainable["scratch"] == trainable["full"] == records[0]["total"]
    assert head < trainable["partial"] < trainable["full"]
    again = strategy_grid(pretrained, tiny_data(), tiny_data(seed=1), labels_per_class=(1, 3),
                          seeds=(0, 1), steps=2, batch_size=8, lr=lr, task="t")
    assert [r["test_acc"] for r in again] == [r["test_acc"] for r in records]  # seeded


def test_strategy_grid_measure_sees_each_trained_model():
    pretrained = tiny_model()
    test = tiny_data(seed=1)
    seen = []

    def measure(model):
        seen.append(copy.deepcopy(model))
        correct = (model.eval()(test.images).argmax(1) == test.labels).float().mean().item()
        return {"again": correct, "moved": not same_state(model.features, pretrained.features)}

    records = strategy_grid(pretrained, tiny_data(), test, strategies=("feature_extraction",
                                                                        "full", "lp_ft"),
                            labels_per_class=(2,), seeds=(0, 1), steps=4, batch_size=5,
                            lr=0.05, measure=measure)
    assert len(seen) == len(records) == 6
    for r, model in zip(records, seen, strict=True):
        assert r["again"] == pytest.approx(r["test_acc"])  # measured on the trained model
        assert r["moved"] is (r["strategy"] != "feature_extraction")
        assert model.head.out_features == 5
    with pytest.raises(ValueError, match="measure=3 must be a function"):
        strategy_grid(pretrained, tiny_data(), test, steps=1, measure=3)


def test_strategy_grid_bad_input():
    data = tiny_data()
    with pytest.raises(ValueError, match="strategy='fulll' is not one of 'scratch'"):
        strategy_grid(tiny_model(), data, data, strategies=("fulll",), steps=1)
    with pytest.raises(ValueError, match="lr has no entry for strategy 'partial'"):
        strategy_grid(tiny_model(), data, data, strategies=("partial",), steps=1,
                      lr={"full": 0.1})
    with pytest.raises(ValueError, match="strategy='lp_ft' trains each stage with SGD"):
        strategy_grid(tiny_model(), data, data, strategies=("full", "lp_ft"), steps=1,
                      optimizer="adamw")


def test_strategy_grid_records_which_optimizer_ran():
    pretrained = tiny_model()
    data, test = tiny_data(), tiny_data(seed=1)
    options = dict(strategies=("feature_extraction", "full"), labels_per_class=(3,),
                   seeds=(0,), steps=4, batch_size=8, task="t")
    runs = {name: strategy_grid(pretrained, data, test, optimizer=name, **options)
            for name in ("sgd", "adamw")}
    for name, records in runs.items():
        assert [r["optimizer"] for r in records] == [name, name]
        assert [r["lr"] for r in records] == [0.05 if name == "sgd" else 1e-3] * 2  # defaults
    for sgd, adamw in zip(runs["sgd"], runs["adamw"], strict=True):
        assert sgd["strategy"] == adamw["strategy"]
        losses = [[e["train_loss"] for e in r["history"]] for r in (sgd, adamw)]
        assert losses[0] != losses[1], sgd["strategy"]  # a different optimizer ran
    rates = {"feature_extraction": 0.03, "full": 0.003}
    records = strategy_grid(pretrained, data, test, optimizer="adam", lr=rates, **options)
    assert [(r["optimizer"], r["lr"]) for r in records] == [("adam", 0.03), ("adam", 0.003)]


def test_train_and_score_takes_a_name_or_an_optimizer():
    train, test = tiny_data(), tiny_data(seed=1)
    named, built = tiny_model(num_classes=5), tiny_model(num_classes=5)
    a = train_and_score(named, train, test, steps=4, batch_size=10, optimizer="adam")
    b = train_and_score(built, train, test, steps=4, batch_size=10,
                        optimizer=Adam(built.parameters(), lr=1e-3))
    assert same_state(named, built) and a["test_acc"] == b["test_acc"]


@pytest.mark.parametrize(("kwargs", "problem"), [
    ({"optimizer": "adan"}, "optimizer='adan' is not one of 'sgd', 'adam', 'adamw'"),
    ({"optimizer": "adamw", "momentum": 0.9}, "momentum=0.9 is a setting of optimizer='sgd'"),
    ({"optimizer": "adam", "lr": {"full": -1.0}}, "lr=-1.0"),
])
def test_strategy_grid_checks_the_optimizer_before_any_run(kwargs, problem, monkeypatch):
    import ftcore.transfer

    monkeypatch.setattr(ftcore.transfer, "run_all", lambda *a, **k: pytest.fail("ran"))
    data = tiny_data()
    with pytest.raises(ValueError, match=re.escape(problem)):
        strategy_grid(tiny_model(), data, data, strategies=("full",), steps=1, **kwargs)


def test_learning_curve_with_adamw_keeps_one_optimizer_and_differs_from_sgd():
    train, val, test = tiny_data(), tiny_data(seed=1), tiny_data(seed=2)
    curves = {name: learning_curve(tiny_model(num_classes=5), train, val, test, steps=12,
                                   every=4, batch_size=10, optimizer=name)["curve"]
              for name in ("sgd", "adamw")}
    assert [r["step"] for r in curves["adamw"]] == [6, 12]
    assert [r["val_loss"] for r in curves["sgd"]] != [r["val_loss"] for r in curves["adamw"]]
    with pytest.raises(ValueError, match=re.escape("momentum=0.5 is a setting of")):
        learning_curve(tiny_model(num_classes=5), train, val, test, optimizer="adam",
                       momentum=0.5)


@pytest.mark.parametrize("fine_tune", [False, True])
def test_transfer_first_keeps_k_blocks_and_reinitialises_the_rest(fine_tune):
    pretrained = tiny_model()
    before = copy.deepcopy(pretrained)
    model = transfer_first(pretrained, 2, 3, fine_tune=fine_tune, seed=0)
    assert same_state(before, pretrained)
    assert model.head.out_features == 3
    for name in BODY[:2]:
        assert same_state(pretrained.get_submodule(name), model.get_submodule(name))
        assert is_frozen(model.get_submodule(name)) is not fine_tune
    fc_old = pretrained.features.fc.linear.weight
    assert not torch.equal(fc_old, model.features.fc.linear.weight)
    assert not is_frozen(model.features.fc) and not is_frozen(model.head)


def test_transfer_first_zero_is_scratch_and_all_is_feature_extraction():
    pretrained = tiny_model(seed=1)  # (seed 0 would re-draw the very same initial weights)
    scratch = transfer_first(pretrained, 0, 5, fine_tune=False, seed=0)
    for name, module in blocks(pretrained):
        assert not torch.equal(next(module.parameters()),
                               next(scratch.get_submodule(name).parameters())), name
    assert all(p.requires_grad for p in scratch.parameters())
    frozen = transfer_first(pretrained, 3, 5, fine_tune=False, seed=0)
    assert [n for n, m in blocks(frozen) if is_frozen(m)] == BODY
    with pytest.raises(ValueError, match="k=4 must be a whole number from 0 to 3"):
        transfer_first(pretrained, 4, 5, fine_tune=True)


def test_summarise_mean_spread_and_grouping():
    records = [{"task": "a", "strategy": "s", "labels_per_class": 1, "test_acc": v}
               for v in (0.5, 0.7, 0.9)]
    records.append({"task": "a", "strategy": "t", "labels_per_class": 1, "test_acc": 0.4})
    rows = summarise(records)
    assert rows[0] == pytest.approx({"task": "a", "strategy": "s", "labels_per_class": 1,
                                     "mean": 0.7, "min": 0.5, "max": 0.9, "std": 0.2, "spread": 0.4,
                                     "n": 3})
    assert rows[1]["std"] == 0.0 and rows[1]["n"] == 1
    with pytest.raises(KeyError, match="seconds"):
        summarise(records, key="seconds")


def test_pivot_and_lookup():
    rows = [{"task": "a", "strategy": s, "labels_per_class": n, "mean": m}
            for s, n, m in [("x", 1, 0.1), ("x", 5, 0.2), ("y", 1, 0.3), ("y", 5, 0.4)]]
    rows.append({"task": "b", "strategy": "x", "labels_per_class": 1, "mean": 0.9})
    table = pivot(rows, "strategy", "labels_per_class", lambda r: r["mean"], task="a")
    assert table == [{"strategy": "x", "1": 0.1, "5": 0.2}, {"strategy": "y", "1": 0.3, "5": 0.4}]
    assert lookup(rows, task="b")["mean"] == 0.9
    with pytest.raises(KeyError, match="2 rows match"):
        lookup(rows, strategy="x", labels_per_class=1)


def test_relative_change():
    before = tiny_model()
    after = copy.deepcopy(before)
    with torch.no_grad():
        after.head.weight.mul_(3)
    change = relative_change(copy.deepcopy(before.state_dict()), after)
    assert change["head.weight"] == pytest.approx(2.0)
    assert change["features.conv1.conv.weight"] == 0.0


def test_plot_sweep_draws_one_line_per_group_per_panel():
    rows = [{"task": t, "strategy": s, "labels_per_class": n, "mean": m, "min": m - 0.1,
             "max": m + 0.1}
            for t in ("a", "b") for s in ("x", "y") for n, m in ((5, 0.6), (1, 0.3))]
    fig = plot_sweep(rows, x="labels_per_class", group="strategy", panel="task", logx=True)
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["a", "b"]
    for ax in axes:
        lines = ax.get_lines()
        assert [line.get_label() for line in lines] == ["x", "y"]
        assert list(lines[0].get_xdata()) == [1, 5]  # sorted by x
        assert list(lines[0].get_ydata()) == [0.3, 0.6]
        assert ax.get_xscale() == "log"


def test_load_target_gives_lesson_04s_tasks(mnist_root):
    model, pool, test = load_target("mnist-5-9", pretrain_epochs=1, test_per_class=3, seed=1)
    assert model.head.out_features == 5, "the model pre-trained on digits 0-4"
    assert set(pool.labels.tolist()) == set(range(5)) and pool.classes == ("5", "6", "7", "8", "9")
    assert test.class_counts().tolist() == [3] * 5
    assert not torch.equal(test.images, load_target("mnist-5-9", pretrain_epochs=1,
                                                    test_per_class=3, seed=2)[2].images)
    model, pool, test = load_target("uci-digits", pretrain_epochs=1)
    assert model.head.out_features == 10 and pool.num_classes == 10 and len(test) > len(pool) / 5
    with pytest.raises(ValueError, match="'mnist-59' is not one of 'uci-digits'"):
        load_target("mnist-59")
    assert set(TARGETS) == {"uci-digits", "mnist-5-9", "fashion-mnist"}


def test_learning_curve_checkpoints_and_early_stopping():
    train, val, test = tiny_data(), tiny_data(seed=1), tiny_data(seed=2)
    model = tiny_model(num_classes=5)
    run = learning_curve(model, train, val, test, steps=12, every=4, lr=0.05, batch_size=10,
                         equal_steps=5)
    curve = run["curve"]
    assert [r["step"] for r in curve] == [6, 12]  # 3 steps per epoch: chunks of 2 epochs
    assert set(curve[0]) == {"step", "train_acc", "val_acc", "val_loss"}
    top = best_point(curve)
    assert (run["best_step"], run["best_val_acc"]) == (top["step"], top["val_acc"])
    assert run["val_acc"] == curve[0]["val_acc"]  # the first checkpoint at or after step 5
    correct = (model(test.images).argmax(1) == test.labels).float().mean().item()
    assert run["best_test_acc"] == pytest.approx(correct), "the model keeps the best weights"
    assert (model(val.images).argmax(1) == val.labels).float().mean().item() == pytest.approx(
        top["val_acc"])
    # lr ~0: validation never improves after the first checkpoint, so patience stops it
    frozen = learning_curve(tiny_model(num_classes=5), train, val, test, steps=60, every=3,
                            lr=1e-12, batch_size=10, patience=2)
    assert [r["step"] for r in frozen["curve"]] == [3, 6, 9]
    late = learning_curve(tiny_model(num_classes=5), train, val, test, steps=60, every=3,
                          lr=1e-12, batch_size=10, patience=2, equal_steps=15)
    assert late["curve"][-1]["step"] == 15, "no early stop before the equal-steps point"
    with pytest.raises(ValueError, match="every=0"):
        learning_curve(tiny_model(num_classes=5), train, val, test, every=0)
    with pytest.raises(ValueError, match="equal_steps=20 must be from 1 to steps=10"):
        learning_curve(tiny_model(num_classes=5), train, val, test, steps=10, equal_steps=20)


def test_best_point_and_point_at():
    curve = [{"step": 10, "val_acc": 0.5}, {"step": 20, "val_acc": 0.7},
             {"step": 30, "val_acc": 0.7}, {"step": 40, "val_acc": 0.6}]
    assert best_point(curve)["step"] == 20  # the earliest of the tied best
    assert point_at(curve, 20)["step"] == 20 and point_at(curve, 21)["step"] == 30
    with pytest.raises(ValueError, match="stops at step 40, before step=50"):
        point_at(curve, 50)
    with pytest.raises(ValueError, match="no checkpoints"):
        best_point([])


def test_curve_grid_sweeps_rates_per_strategy_and_leaves_the_model_alone():
    pretrained = tiny_model()
    before = copy.deepcopy(pretrained)
    splits = Splits(tiny_data(), tiny_data(seed=1), tiny_data(seed=2))
    lr = {"scratch": [0.01, 0.1], "full": 0.02}
    records = curve_grid(pretrained, splits, strategies=("scratch", "full"), labels_per_class=(2,),
                         seeds=(0, 1), lr=lr, steps=6, every=2, equal_steps=4, batch_size=5,
                         task="t")
    assert same_state(before, pretrained)
    assert sorted((r["strategy"], r["seed"], r["lr"]) for r in records) == [
        ("full", 0, 0.02), ("full", 1, 0.02), ("scratch", 0, 0.01), ("scratch", 0, 0.1),
        ("scratch", 1, 0.01), ("scratch", 1, 0.1)]
    for r in records:
        assert r["best_step"] == best_point(r["curve"])["step"] and r["task"] == "t"
        assert r["val_acc"] == point_at(r["curve"], 4)["val_acc"]
        assert 0 <= r["test_acc"] <= 1 and 0 <= r["best_test_acc"] <= 1
    rates = {r["lr"]: r["curve"] for r in records if r["strategy"] == "scratch" and r["seed"] == 0}
    assert rates[0.01] != rates[0.1]  # each rate starts from its own fresh copy, so they differ
    with pytest.raises(ValueError, match="equal_steps=8 must be from 1 to steps=6"):
        curve_grid(pretrained, splits, steps=6, equal_steps=8)
    with pytest.raises(ValueError, match="strategy='fulll'"):
        curve_grid(pretrained, splits, strategies=("fulll",))


def test_load_task_has_a_validation_split_and_a_pretrain_seed(mnist_root):
    model, (pool, val, test) = load_task("mnist-5-9", pretrain_epochs=1, val_per_class=4)
    assert model.head.out_features == 5 and val.class_counts().tolist() == [4] * 5
    assert set(val.labels.tolist()) == set(range(5)) and len(test) > len(val)
    other, _ = load_task("mnist-5-9", pretrain_epochs=1, pretrain_seed=1)
    assert not same_state(model, other)
