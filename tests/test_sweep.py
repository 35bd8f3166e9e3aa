"""ftcore.sweep: every combination of a grid run once, results as plain records, the best one
picked, and a readable table."""

from __future__ import annotations

import math

import pytest

from ftcore.sweep import average, best, grid_points, sweep, table


def test_grid_points_is_the_product_last_name_fastest():
    points = grid_points({"lr": [0.1, 0.01], "batch_size": [8, 16, 32]})
    assert len(points) == 6
    assert points[0] == {"lr": 0.1, "batch_size": 8}
    assert points[1] == {"lr": 0.1, "batch_size": 16}
    assert points[-1] == {"lr": 0.01, "batch_size": 32}
    assert len({tuple(p.items()) for p in points}) == 6


def test_sweep_calls_run_once_per_point_and_records_point_results_and_time():
    calls = []

    def run(a, b):
        calls.append((a, b))
        return {"score": a * 10 + b}

    records = sweep(run, {"a": [1, 2], "b": [3, 4]})
    assert calls == [(1, 3), (1, 4), (2, 3), (2, 4)]
    assert [r["score"] for r in records] == [13, 14, 23, 24]
    assert list(records[0]) == ["a", "b", "score", "seconds"]
    assert all(r["seconds"] >= 0 for r in records)


@pytest.mark.parametrize("grid, message", [
    ({}, "non-empty dict"),
    ([("lr", [0.1])], "non-empty dict"),
    ({"lr": 0.1}, r"grid\['lr'\]=0.1 must be a non-empty list"),
    ({"lr": []}, "non-empty list"),
    ({"optimizer": "sgd"}, "non-empty list"),
])
def test_bad_grids_raise(grid, message):
    with pytest.raises(ValueError, match=message):
        sweep(lambda **kw: {"score": 0}, grid)


def test_run_must_return_a_dict_without_parameter_names():
    with pytest.raises(TypeError, match="must return a dict"):
        sweep(lambda lr: 0.9, {"lr": [0.1]})
    with pytest.raises(ValueError, match=r"\['lr'\]"):
        sweep(lambda lr: {"lr": lr}, {"lr": [0.1]})


RECORDS = [{"lr": 0.1, "val_acc": 0.8, "val_loss": 0.5},
           {"lr": 0.01, "val_acc": 0.9, "val_loss": 0.7},
           {"lr": 0.001, "val_acc": 0.9, "val_loss": 0.4},
           {"lr": 1.0, "val_acc": math.nan, "val_loss": math.nan}]


def test_best_picks_the_highest_or_lowest_first_on_ties_and_never_nan():
    assert best(RECORDS, "val_acc")["lr"] == 0.01
    assert best(RECORDS, "val_loss", mode="min")["lr"] == 0.001
    chosen = best(RECORDS, "val_acc")
    chosen["lr"] = 5  # a copy: the records stay as they were
    assert RECORDS[1]["lr"] == 0.01


def test_best_bad_input():
    with pytest.raises(ValueError, match="mode='maximum'"):
        best(RECORDS, "val_acc", mode="maximum")
    with pytest.raises(ValueError, match="no records"):
        best([], "val_acc")
    with pytest.raises(KeyError, match="'test_acc'"):
        best(RECORDS, "test_acc")
    with pytest.raises(ValueError, match="nan"):
        best([{"a": math.nan}], "a")


def test_table_has_a_header_a_rule_and_one_aligned_row_per_record():
    lines = table(RECORDS[:3], columns=["lr", "val_acc"], digits=2).splitlines()
    assert len(lines) == 2 + 3
    assert lines[0].split() == ["lr", "val_acc"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].split() == ["0.10", "0.80"]
    assert lines[4].split() == ["0.001", "0.90"]  # small numbers keep a significant digit
    assert len({len(line) for line in lines}) == 1  # numbers right-aligned to one width


def test_table_defaults_to_every_key_and_leaves_missing_values_blank():
    text = table([{"remedy": "dropout", "val_acc": 0.81}, {"remedy": "none"}])
    header, _, first, second = text.splitlines()
    assert header.split() == ["remedy", "val_acc"]
    assert first.split() == ["dropout", "0.810"]
    assert second.split() == ["none"]


def test_average_groups_in_order_of_appearance_and_counts():
    runs = [{"p": 0.5, "seed": 0, "acc": 0.8}, {"p": 0.0, "seed": 0, "acc": 0.6},
            {"p": 0.5, "seed": 1, "acc": 0.9}, {"p": 0.0, "seed": 1, "acc": 0.7},
            {"p": 0.5, "seed": 2, "acc": 1.0}]
    means = average(runs, "p", ["acc"])
    assert [m["p"] for m in means] == [0.5, 0.0]
    assert means[0]["acc"] == pytest.approx(0.9) and means[0]["n"] == 3
    assert means[1]["acc"] == pytest.approx(0.65) and means[1]["n"] == 2
    by_both = average(runs, ["p", "seed"], ["acc"])
    assert len(by_both) == len(runs) and all(m["n"] == 1 for m in by_both)


def test_average_missing_key_raises():
    with pytest.raises(KeyError, match="'acc'"):
        average([{"p": 0.5}], "p", ["acc"])


def test_grid_values_may_be_generators():
    from ftcore.sweep import grid_points

    points = grid_points({"lr": (x / 10 for x in (1, 2)), "epochs": iter([5])})
    assert points == [{"lr": 0.1, "epochs": 5}, {"lr": 0.2, "epochs": 5}]


def test_summary_and_spread_of_over_seeds():
    from ftcore.sweep import spread_of, summary

    runs = [{"lr": lr, "seed": s, "acc": acc}
            for lr, accs in ((0.1, (0.80, 0.90, 0.85)), (0.01, (0.70, 0.72, 0.71)))
            for s, acc in enumerate(accs)]
    rows = summary(runs, "lr", "acc")
    assert [r["lr"] for r in rows] == [0.1, 0.01]
    assert rows[0] == pytest.approx({"lr": 0.1, "mean": 0.85, "std": 0.05, "min": 0.80,
                                     "max": 0.90, "spread": 0.10, "n": 3})
    assert spread_of(runs, "acc", lr=0.01) == pytest.approx(0.02)
    assert spread_of(runs, "acc") == pytest.approx(0.20)
    with pytest.raises(ValueError, match="no record"):
        spread_of(runs, "acc", lr=1.0)
    with pytest.raises(KeyError, match="val_acc"):
        summary(runs, "lr", "val_acc")


def test_selection_bias_chosen_score_is_optimistic_and_one_candidate_is_not():
    import numpy as np

    from ftcore.sweep import selection_bias

    rng = np.random.default_rng(0)
    correct = rng.random((12, 600)) < 0.8          # 12 equally good candidates: any gap is luck
    chosen = selection_bias(correct, n_val=200, repeats=300, seed=1)
    alone = selection_bias(correct[:1], n_val=200, repeats=300, seed=1)
    assert len(chosen) == 300 and set(chosen[0]) == {"repeat", "chosen", "val_acc", "new_acc",
                                                     "optimism"}
    mean = np.mean([r["optimism"] for r in chosen])
    control = np.mean([r["optimism"] for r in alone])
    assert mean > 0.02 and abs(control) < 0.005     # selection overstates; no choice does not
    assert all(r["optimism"] == r["val_acc"] - r["new_acc"] for r in chosen)
    assert len({r["chosen"] for r in chosen}) > 3   # luck picks different winners
    assert selection_bias(correct, 200, 5, seed=1) == chosen[:5]   # same seed, same splits


def test_selection_bias_picks_the_better_candidate_and_the_first_on_ties():
    from ftcore.sweep import selection_bias

    correct = [[1, 0] * 50, [1] * 100, [1] * 100]   # candidates 1 and 2 tie, always right
    rounds = selection_bias(correct, n_val=40, repeats=10)
    assert all(r["chosen"] == 1 and r["optimism"] == 0 for r in rounds)


def test_selection_bias_rejects_bad_input_before_work():
    from ftcore.sweep import selection_bias

    with pytest.raises(ValueError, match="n_val=100"):
        selection_bias([[1, 0] * 50], n_val=100)
    with pytest.raises(ValueError, match="0/1"):
        selection_bias([[0.5, 1.0, 0.0]], n_val=1)
    with pytest.raises(ValueError, match="shape"):
        selection_bias([1, 0, 1], n_val=1)
    with pytest.raises(ValueError, match="repeats"):
        selection_bias([[1, 0, 1]], n_val=1, repeats=0)
