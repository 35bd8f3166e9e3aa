"""ftcore.unfreezing: LP-FT and gradual unfreezing as stages; the head-only stage leaves the
body bit-identical, blocks unfreeze from the head backwards, the step budget is exact and the
same as a single-stage strategy's; bad stages are refused before the model changes. Also the
feature-distortion measures of ftcore.surgery (block_change, feature_change)."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import BODY_BLOCKS, random_images, tiny_cnn

import ftcore.unfreezing
from ftcore.checks import ParameterError
from ftcore.data import Splits
from ftcore.lr_find import lr_find
from ftcore.optim import SGD
from ftcore.surgery import (
    block_change,
    feature_change,
    freeze,
    penultimate,
    replace_head,
    unfreeze,
)
from ftcore.train import fit
from ftcore.transfer import curve_grid, strategy_grid
from ftcore.unfreezing import (
    Stage,
    fit_in_stages,
    gradual_unfreezing_stages,
    lp_ft_stages,
    split_steps,
    strategy_stages,
)


def tiny_data(n=30, classes=5, seed=0):
    return random_images(n, classes, seed)


def model5(seed=0):
    return replace_head(tiny_cnn(seed=seed), 5, seed=seed)


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def flags(model):
    return {n: p.requires_grad for n, p in model.named_parameters()}


@pytest.fixture
def per_stage(monkeypatch):
    """Run fit_in_stages with its fit spied on: for each stage, the names of the parameters
    and buffers that changed, and the optimizer steps taken."""
    changes, steps = [], []
    real_fit, real_step = ftcore.unfreezing.fit, SGD.step

    def spy_fit(model, *args, **kwargs):
        before = state(model)
        steps.append(0)
        history = real_fit(model, *args, **kwargs)
        after = model.state_dict()
        changes.append({k for k in before if not torch.equal(before[k], after[k])})
        return history

    def counting_step(self, *args, **kwargs):
        steps[-1] += 1
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(ftcore.unfreezing, "fit", spy_fit)
    monkeypatch.setattr(SGD, "step", counting_step)
    return changes, steps


# --- the schedules ----------------------------------------------------------------------------

def test_split_steps_is_near_equal_with_the_remainder_last():
    assert split_steps(10, 4) == [2, 2, 3, 3] and split_steps(8, 4) == [2] * 4
    assert split_steps(5, 1) == [5] and sum(split_steps(37, 6)) == 37
    with pytest.raises(ParameterError, match="steps=3 must be a whole number >= 4; 4 stages"):
        split_steps(3, 4)


def test_lp_ft_is_the_head_then_everything():
    model = model5()
    assert lp_ft_stages(model, 11) == [Stage(6, ("head",), "linear probe"),
                                       Stage(5, (), "fine-tune")]
    assert [s.steps for s in lp_ft_stages(model, 10, probe_fraction=0.9)] == [9, 1]
    assert [s.steps for s in lp_ft_stages(model, 2, probe_fraction=0.01)] == [1, 1]
    assert strategy_stages(model, "lp_ft", 11) == lp_ft_stages(model, 11)
    with pytest.raises(ParameterError, match="probe_fraction=1 must be in \\(0, 1\\)"):
        lp_ft_stages(model, 10, probe_fraction=1)


def test_gradual_unfreezing_goes_from_the_head_backwards():
    stages = gradual_unfreezing_stages(model5(), 10)
    assert [s.parts for s in stages] == [("head",), ("features.fc", "head"),
                                         ("features.conv2", "features.fc", "head"), ()]
    assert [s.steps for s in stages] == [2, 2, 3, 3]
    assert stages[-1].name == "everything" and stages[1].name == "head + features.fc"
    assert strategy_stages(model5(), "gradual", 10) == stages
    with pytest.raises(ParameterError, match="strategy='ulmfit' is not one of 'lp_ft', "
                                             "'gradual'"):
        strategy_stages(model5(), "ulmfit", 10)


# --- the runner -------------------------------------------------------------------------------

def test_the_head_only_stage_leaves_the_body_bit_identical(per_stage):
    changes, steps = per_stage
    model = model5()  # BatchNorm in the body: its running statistics must not move either
    body = {k: v.clone() for k, v in model.features.state_dict().items()}
    fit_in_stages(model, tiny_data(), stages=[Stage(4, ("head",))], batch_size=8, lr=0.1)
    assert all(torch.equal(body[k], v) for k, v in model.features.state_dict().items())
    assert changes == [{"head.weight", "head.bias"}] and steps == [4]


def test_gradual_unfreezing_changes_blocks_in_the_stated_order(per_stage):
    changes, steps = per_stage
    model = model5()
    stages = gradual_unfreezing_stages(model, 13)
    history = fit_in_stages(model, tiny_data(), tiny_data(seed=1), stages=stages,
                            batch_size=8, lr=0.05)
    keys = list(model.state_dict())
    expected, trained = [], ["head"]
    for block in [None, *reversed(BODY_BLOCKS)]:  # None: the head-only stage
        trained += [block] if block else []
        expected.append({k for k in keys if any(k.startswith(b + ".") for b in trained)})
    # A convolution's bias just before BatchNorm gets a gradient of (about) 0: the batch
    # mean is subtracted right after it. Whether it moves by a rounding error is not the point.
    near_zero = {k for k in keys if k.endswith("conv.bias")}
    assert [c - near_zero for c in changes] == [e - near_zero for e in expected]
    assert all(c <= e for c, e in zip(changes, expected, strict=True))  # nothing else moved
    assert steps == [3, 3, 3, 4] == [s.steps for s in stages]  # 13 steps, remainder last
    records = history.records
    assert [r["stage"] for r in records] == [1, 2, 3, 4]  # 30 images, batches of 8: 4 a pass
    assert [r["steps"] for r in records] == [3, 6, 9, 13]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    assert [r["stage_name"] for r in records][0] == "head" and "val_acc" in records[0]
    assert all(p.requires_grad for p in model.parameters())  # the last stage: everything


def test_lp_ft_steps_and_rates_per_stage(per_stage):
    changes, steps = per_stage
    model = model5()
    history = fit_in_stages(model, tiny_data(), stages=lp_ft_stages(model, 10),
                            batch_size=8, lr=(0.1, 0.01), lr_schedule="cosine")
    assert steps == [5, 5] and history.last["steps"] == 10
    assert [r["lr"] for r in history.records] == [0.1, 0.1, 0.01, 0.01]
    assert [r["stage_epoch"] for r in history.records] == [1, 2, 1, 2]  # 4 + 1 steps each
    assert changes[0] == {"head.weight", "head.bias"}
    assert {"features.conv1.conv.weight", "head.weight"} <= changes[1]


def test_auto_rates_come_from_the_range_test_per_stage(mnist_small):
    train, _ = mnist_small
    model = tiny_cnn()
    history = fit_in_stages(model, train, stages=[Stage(3, ("head",)), Stage(3, ())],
                            batch_size=50, lr="auto")
    rates = [r["lr"] for r in history.records]
    probe = freeze(copy.deepcopy(tiny_cnn()))
    unfreeze(probe, "head")  # the first stage's trainable parts, where its test runs
    assert rates[0] == lr_find(probe, train, batch_size=50, seed=0).suggestion
    assert rates[-1] != rates[0] and all(0 < r < 1 for r in rates)


BAD_STAGES = [
    ([], "must be a non-empty list of Stage"),
    ([Stage(0, ("head",))], "stage 0's steps=0 must be a whole number >= 1"),
    ([Stage(2, ("head",)), Stage(2, ("features.conv9",))],
     "stage 1: 'features.conv9' is not a part of SmallCNN with parameters; valid names: "
     "features, head"),
    ([Stage(2, ("features.conv1.relu",))], "'features.conv1.relu' is not a part"),
    ([Stage(2, "head")], "parts='head' must be a tuple of part names"),
    ([(2, "head"), "oops"], "stage 1: 'oops' is not a Stage"),
]


@pytest.mark.parametrize("stages, message", BAD_STAGES)
def test_bad_stages_are_refused_before_the_model_changes(stages, message):
    model = model5()
    freeze(model, "features.conv1")
    before, trainable = state(model), flags(model)
    with pytest.raises(ParameterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        fit_in_stages(model, tiny_data(), stages=stages)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert flags(model) == trainable


@pytest.mark.parametrize("options, message", [
    ({"lr": (0.1,)}, r"lr=\[0.1\] gives 1 rate\(s\) for 2 stage\(s\)"),
    ({"lr": "fast"}, r"lr='fast' must be a finite number > 0; one rate, one per stage, or "
                     "'auto'"),
    ({"lr": (0.1, -1)}, r"lr\[1\]=-1 must be a finite number > 0"),
    ({"momentum": 1.5}, r"momentum=1.5 must be in \[0, 1\)"),
    ({"lr_schedule": "linear"}, r"lr_schedule='linear' is not one of"),
    ({"train": tiny_data(classes=7)}, r"labels up to 6 .* outputs 5 classes"),
])
def test_bad_options_are_refused_before_the_model_changes(options, message):
    model = model5()
    freeze(model, "features.conv1")
    before, trainable = state(model), flags(model)
    options = {"train": tiny_data(), **options}
    with pytest.raises(ValueError, match=message):
        fit_in_stages(model, stages=lp_ft_stages(model, 4), **options)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert flags(model) == trainable


def test_a_pair_is_a_stage():
    model = model5()
    history = fit_in_stages(model, tiny_data(), stages=[(2, "head"), (1, ())], batch_size=10)
    assert history.last["steps"] == 3 and [r["stage"] for r in history.records] == [1, 2]


# --- in the strategy grid ---------------------------------------------------------------------

def test_strategy_grid_compares_full_lp_ft_and_gradual_at_the_same_step_budget(monkeypatch):
    calls = []
    real_step = SGD.step
    monkeypatch.setattr(SGD, "step", lambda self, *a, **k: calls.append(1) or real_step(self))
    pretrained = tiny_cnn()
    before = state(pretrained)
    counts = []
    records = []
    for strategy in ("full", "lp_ft", "gradual"):
        calls.clear()
        records += strategy_grid(pretrained, tiny_data(), tiny_data(seed=1),
                                 strategies=(strategy,), labels_per_class=(3,), seeds=(0,),
                                 steps=5, batch_size=4, lr={"full": 0.05, "lp_ft": (0.1, 0.05),
                                                            "gradual": 0.05})
        counts.append(len(calls))
    assert counts == [8, 8, 8]  # 15 images in batches of 4: 2 epochs of 4 updates each
    assert [r["steps"] for r in records] == [8, 8, 8]
    assert [r["lr"] for r in records] == [0.05, (0.1, 0.05), (0.05,) * 4]
    assert all(r["trainable"] == r["total"] and 0 <= r["test_acc"] <= 1 for r in records)
    assert all(torch.equal(before[k], v) for k, v in pretrained.state_dict().items())
    with pytest.raises(ParameterError, match="4 stages need at least 4 steps"):
        strategy_grid(pretrained, tiny_data(), tiny_data(), strategies=("gradual",),
                      labels_per_class=(1,), seeds=(0,), steps=2, batch_size=8)
    with pytest.raises(ValueError, match="strategy='lpft' is not one of 'scratch', .*, "
                                         "'lp_ft', 'gradual'"):
        strategy_grid(pretrained, tiny_data(), tiny_data(), strategies=("lpft",), steps=2)
    with pytest.raises(ValueError, match="strategy='lp_ft' is not one of 'scratch', "
                                         "'feature_extraction', 'partial', 'full'$"):
        curve_grid(pretrained, Splits(tiny_data(), tiny_data(), tiny_data()),
                   strategies=("lp_ft",))  # learning curves are single-stage only, for now


# --- feature distortion -----------------------------------------------------------------------

def test_block_change_is_zero_for_frozen_blocks_and_positive_for_trained_ones():
    model = model5()
    before = copy.deepcopy(model)
    assert block_change(before, model) == dict.fromkeys(BODY_BLOCKS, 0.0)
    freeze(model, "features.conv1")
    fit(model, tiny_data(), epochs=2, batch_size=10, lr=0.05, progress=False)
    change = block_change(before.state_dict(), model)
    assert list(change) == BODY_BLOCKS and change["features.conv1"] == 0.0
    assert change["features.conv2"] > 0 and change["features.fc"] > 0
    w = [p.detach() for p in before.features.fc.parameters()]
    w_after = [p.detach() for p in model.features.fc.parameters()]
    expected = (sum((a - b).pow(2).sum() for a, b in zip(w_after, w, strict=True)).sqrt()
                / sum(b.pow(2).sum() for b in w).sqrt())
    assert change["features.fc"] == pytest.approx(float(expected), rel=1e-5)
    with pytest.raises(ValueError, match="before has no weights of the same shape for "
                                         "features.conv1.conv.weight"):
        block_change(tiny_cnn(width=8), model)


def test_feature_change_is_zero_after_a_linear_probe_and_positive_after_fine_tuning():
    model, images = model5(), tiny_data(seed=2)
    before = copy.deepcopy(model)
    assert penultimate(model, images.images).shape == (30, 16)  # hidden=16 features
    assert feature_change(before, model, images) == 0.0
    fit_in_stages(model, tiny_data(), stages=[Stage(4, ("head",))], batch_size=8, lr=0.1)
    assert feature_change(before, model, images) == 0.0  # the probe moves no feature
    unfreeze(model)
    fit(model, tiny_data(), epochs=2, batch_size=8, lr=0.05, progress=False)
    assert feature_change(before, model, images.images) > 0
    assert model.training is False
    with pytest.raises(ParameterError, match="images must be a Tensor"):
        feature_change(before, model, [1, 2])
