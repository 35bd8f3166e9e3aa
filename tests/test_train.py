"""ftcore.train: fit learns, is reproducible, stops early and restores the best weights, applies
penalties and schedules, refuses impossible set-ups; evaluate, predict, confident_mistakes."""

from __future__ import annotations

import copy
import itertools
import math
import re

import numpy as np
import pytest
import torch
from helpers import tiny_cnn
from sklearn.metrics import accuracy_score, log_loss

from ftcore.checks import ParameterError
from ftcore.data import ImageSet, keep_classes
from ftcore.models import SmallCNN
from ftcore.optim import OPTIMIZERS, SGD, Adam, AdamW
from ftcore.train import (
    History,
    confident_mistakes,
    evaluate,
    fit,
    predict,
    set_train_mode,
)


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def without_seconds(history: History) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history.records]


@pytest.fixture(scope="module")
def zeros_and_ones(mnist, mnist_small):
    """Real MNIST 0s and 1s: 40 training and 100 validation images, an easy problem."""
    return keep_classes(mnist_small[0], [0, 1]), keep_classes(mnist.val, [0, 1])


# ---------------------------------------------------------------- fit learns

def test_fit_learns_a_separable_problem(zeros_and_ones):
    train, val = zeros_and_ones
    model = tiny_cnn(num_classes=2)
    history = fit(model, train, val, epochs=5, lr=0.02, batch_size=10, device="cpu")
    assert len(history) == 5 and history.column("epoch") == [1, 2, 3, 4, 5]
    losses = history.column("train_loss")
    assert losses[-1] < losses[0] / 3
    assert history.last["train_acc"] >= 0.9 and history.last["val_acc"] >= 0.9  # chance: 0.5
    scores = evaluate(model, val)
    assert scores["accuracy"] == history.last["val_acc"]
    assert scores["loss"] == pytest.approx(history.last["val_loss"], rel=1e-6)
    assert not model.training  # fit hands the model back in evaluation mode
    assert set(history.last) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc",
                                 "seconds"}


def test_fit_is_reproducible_and_leaves_the_global_rng_alone(mnist_small):
    train, val = mnist_small
    runs = []
    for seed in (0, 0, 1):
        model = tiny_cnn()
        state = torch.get_rng_state()
        history = fit(model, train, val, epochs=3, lr=0.05, batch_size=32, seed=seed)
        assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is untouched
        runs.append((model, history))
    (a, history_a), (b, history_b), (c, _) = runs
    assert same_weights(a, b) and without_seconds(history_a) == without_seconds(history_b)
    assert not same_weights(a, c)  # the seed changes batch order and dropout masks
    # Ten digits from 20 examples each: the loss still goes clearly down in three epochs.
    losses = history_a.column("train_loss")
    assert losses[-1] < 0.8 * losses[0]
    assert "val_loss" not in fit(tiny_cnn(), train, epochs=1).last  # no val, no val columns


# ---------------------------------------------------------------- early stopping

@pytest.fixture(scope="module")
def wrong_val(mnist_small):
    """The training images with every label shifted by one: the better the model learns the
    training set, the worse its loss on this set, so the validation loss rises."""
    train, _ = mnist_small
    return ImageSet(train.images, (train.labels + 1) % 10, train.classes, "shifted")


def test_early_stopping_stops_and_restores_the_best_weights(mnist_small, wrong_val):
    train, _ = mnist_small
    model = tiny_cnn()
    history = fit(model, train, wrong_val, epochs=10, lr=0.05, batch_size=20, patience=2)
    val_losses = history.column("val_loss")
    assert history.stopped_early and len(history) < 10
    best = int(np.argmin(val_losses)) + 1
    assert history.best_epoch == best
    assert len(history) == best + 2  # it waited exactly `patience` epochs without progress
    assert min(val_losses) < val_losses[-1]  # so the last weights are not the best ones...
    assert evaluate(model, wrong_val)["loss"] == pytest.approx(min(val_losses), rel=1e-6)


def test_patience_without_early_stop_still_returns_the_best_epoch(zeros_and_ones):
    train, val = zeros_and_ones
    model = tiny_cnn(num_classes=2)
    history = fit(model, train, val, epochs=3, lr=0.05, batch_size=10, patience=5)
    assert not history.stopped_early and len(history) == 3
    val_losses = history.column("val_loss")
    assert history.best_epoch == int(np.argmin(val_losses)) + 1
    assert evaluate(model, val)["loss"] == pytest.approx(min(val_losses), rel=1e-6)


# ---------------------------------------------------------------- penalty, schedules

def weight_norm(model: SmallCNN) -> float:
    return float(sum(p.detach().square().sum() for p in model.parameters()).sqrt())


def test_penalty_is_added_to_the_objective(mnist_small):
    train, _ = mnist_small
    plain, l2, constant = tiny_cnn(), tiny_cnn(), tiny_cnn()
    settings = {"epochs": 2, "lr": 0.05, "batch_size": 20}
    history = fit(plain, train, **settings)
    fit(l2, train, penalty=lambda m: sum(p.square().sum() for p in m.parameters()), **settings)
    assert weight_norm(l2) < 0.5 * weight_norm(plain)  # a strong L2 penalty shrinks the weights
    # A penalty with no gradient changes nothing, and the recorded loss is the data loss only.
    constant_history = fit(constant, train, penalty=lambda m: torch.tensor(100.0), **settings)
    assert same_weights(constant, plain)
    assert without_seconds(constant_history) == without_seconds(history)


class RecordingSGD(SGD):
    """ftcore's SGD that remembers each group's learning rate at every step."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lrs = []

    def step(self, closure=None):
        self.lrs.append([group["lr"] for group in self.param_groups])
        return super().step(closure)


def test_cosine_schedule_anneals_every_group_to_zero(zeros_and_ones):
    train, _ = zeros_and_ones  # 40 images, batches of 10: 4 steps per epoch
    model = tiny_cnn(num_classes=2)
    optimizer = RecordingSGD([{"params": model.features.parameters(), "lr": 0.01},
                              {"params": model.head.parameters()}], lr=0.1, momentum=0.9)
    fit(model, train, epochs=3, batch_size=10, optimizer=optimizer, lr_schedule="cosine")
    steps = 3 * 4
    assert len(optimizer.lrs) == steps
    for t, lrs in enumerate(optimizer.lrs):
        factor = (1 + math.cos(math.pi * t / steps)) / 2
        assert lrs == pytest.approx([0.01 * factor, 0.1 * factor], abs=1e-9)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.0, 0.0], abs=1e-9)


def test_constant_schedule_keeps_the_learning_rate(zeros_and_ones):
    train, _ = zeros_and_ones
    model = tiny_cnn(num_classes=2)
    optimizer = RecordingSGD(model.parameters(), lr=0.1)
    fit(model, train, epochs=2, batch_size=10, optimizer=optimizer)
    assert optimizer.lrs == [[0.1]] * 8


# ---------------------------------------------------------------- optimizers by name

def trainable(model):
    return [p for p in model.parameters() if p.requires_grad]


def test_fit_builds_each_optimizer_by_name_with_its_defaults(zeros_and_ones):
    """optimizer="adamw" is AdamW(lr=1e-3, weight_decay=1e-2) over the trainable parameters,
    "adam" Adam(lr=1e-3), "sgd" the lessons' SGD(lr=0.05, momentum=0.9): the same run, bit for
    bit, as passing the optimizer built by hand; and the three runs differ."""
    train, _ = zeros_and_ones
    by_hand = {"sgd": lambda m: SGD(trainable(m), lr=0.05, momentum=0.9),
               "adam": lambda m: Adam(trainable(m), lr=1e-3),
               "adamw": lambda m: AdamW(trainable(m), lr=1e-3, weight_decay=1e-2)}
    runs = {}
    for name, build in by_hand.items():
        named, built = tiny_cnn(num_classes=2), tiny_cnn(num_classes=2)
        named.features.conv1.requires_grad_(False)  # over the trainable parameters only
        built.features.conv1.requires_grad_(False)
        history = fit(named, train, epochs=2, batch_size=10, optimizer=name)
        fit(built, train, epochs=2, batch_size=10, optimizer=build(built))
        assert same_weights(named, built), name
        assert same_weights(named.features.conv1, tiny_cnn(num_classes=2).features.conv1)
        runs[name] = (named, history.column("train_loss"))
    for a, b in itertools.combinations(runs, 2):
        assert not same_weights(runs[a][0], runs[b][0]), (a, b)
        assert runs[a][1] != runs[b][1], (a, b)


def test_fit_passes_lr_and_weight_decay_to_a_named_optimizer(zeros_and_ones):
    train, _ = zeros_and_ones
    named, built = tiny_cnn(num_classes=2), tiny_cnn(num_classes=2)
    fit(named, train, epochs=1, batch_size=10, optimizer="adamw", lr=3e-3, weight_decay=0.5)
    fit(built, train, epochs=1, batch_size=10,
        optimizer=AdamW(built.parameters(), lr=3e-3, weight_decay=0.5))
    assert same_weights(named, built)


@pytest.mark.parametrize(("kwargs", "problem"), [
    ({"optimizer": "adan"}, "optimizer='adan' is not one of 'sgd', 'adam', 'adamw'"),
    ({"optimizer": "adam", "momentum": 0.9}, "momentum=0.9 is a setting of optimizer='sgd'"),
    ({"optimizer": "adamw", "nesterov": True}, "nesterov=True is a setting of optimizer='sgd'"),
    ({"optimizer": "adam", "lr": 0.0}, "lr=0.0"),
    ({"optimizer": "sgd", "momentum": 1.0}, "momentum=1.0"),
    ({"optimizer": 3}, "optimizer must be a str or Optimizer, got int"),
    ({"optimizer": "instance", "lr": 0.1}, "fit: lr=0.1 would be ignored"),
])
def test_fit_refuses_bad_optimizers_before_changing_the_model(zeros_and_ones, kwargs, problem):
    train, _ = zeros_and_ones
    model = tiny_cnn(num_classes=2)
    before = copy.deepcopy(model)
    if kwargs["optimizer"] == "instance":
        kwargs = {**kwargs, "optimizer": Adam(model.parameters())}
    with pytest.raises(ParameterError, match=re.escape(problem)):
        fit(model, train, epochs=1, batch_size=10, **kwargs)
    assert same_weights(model, before)
    assert set(OPTIMIZERS) == {"sgd", "adam", "adamw"}


# ---------------------------------------------------------------- refused set-ups

def test_unknown_schedule_raises(zeros_and_ones):
    train, _ = zeros_and_ones
    with pytest.raises(ValueError, match=r"lr_schedule='linear'.*'constant', 'cosine'"):
        fit(tiny_cnn(num_classes=2), train, lr_schedule="linear")


def test_labels_beyond_the_head_raise_naming_the_fix(mnist_small):
    train, val = mnist_small
    model = tiny_cnn(num_classes=5)
    before = copy.deepcopy(model.state_dict())
    message = r"labels up to 9 \(10 classes\) but the model outputs 5 classes.*replace_head"
    with pytest.raises(ValueError, match=message):
        fit(model, train, epochs=1)
    with pytest.raises(ValueError, match=message):
        evaluate(model, val)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_fit_without_trainable_parameters_raises(zeros_and_ones):
    model = tiny_cnn(num_classes=2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters.*[Uu]nfreeze"):
        fit(model, zeros_and_ones[0])


def test_patience_needs_a_validation_set(zeros_and_ones):
    with pytest.raises(ValueError, match=r"needs a validation set.*patience=2"):
        fit(tiny_cnn(num_classes=2), zeros_and_ones[0], patience=2)
    with pytest.raises(ValueError, match="patience=0"):
        fit(tiny_cnn(num_classes=2), *zeros_and_ones, patience=0)


def test_epochs_must_be_positive(zeros_and_ones):
    with pytest.raises(ValueError, match="epochs=0"):
        fit(tiny_cnn(num_classes=2), zeros_and_ones[0], epochs=0)


def test_empty_data_raises(zeros_and_ones):
    empty = zeros_and_ones[0].subset(torch.tensor([], dtype=torch.int64), name="nothing")
    with pytest.raises(ValueError, match="nothing is empty"):
        evaluate(tiny_cnn(num_classes=2), empty)


# ---------------------------------------------------------------- frozen BatchNorm

def batch_norm_state(module: torch.nn.Module) -> dict:
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_set_train_mode_keeps_frozen_batch_norm_in_eval_mode(seeded):
    model = tiny_cnn()
    model.features.conv1.requires_grad_(False)  # conv and BatchNorm of the first block
    model.eval()
    set_train_mode(model)
    assert model.training and model.features.fc.dropout.training
    assert not model.features.conv1.norm.training
    assert model.features.conv2.norm.training
    frozen, free = (batch_norm_state(model.features.conv1.norm),
                    batch_norm_state(model.features.conv2.norm))
    model(torch.rand(8, 1, 28, 28))
    after_frozen = model.features.conv1.norm.state_dict()
    after_free = model.features.conv2.norm.state_dict()
    assert all(torch.equal(after_frozen[k], v) for k, v in frozen.items())
    assert not torch.equal(after_free["running_mean"], free["running_mean"])


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_fit_keeps_a_frozen_block_exactly(zeros_and_ones, optimizer):
    train, _ = zeros_and_ones
    model = tiny_cnn(num_classes=2)
    model.features.conv1.requires_grad_(False)
    block = batch_norm_state(model.features.conv1)
    trained = batch_norm_state(model.features.conv2)
    fit(model, train, epochs=1, batch_size=10, optimizer=optimizer)
    after = model.features.conv1.state_dict()
    assert all(torch.equal(after[k], v) for k, v in block.items())  # weights and statistics
    assert not torch.equal(model.features.conv2.state_dict()["norm.running_mean"],
                           trained["norm.running_mean"])


# ---------------------------------------------------------------- evaluate, predict

@pytest.fixture(scope="module")
def trained(mnist_small):
    train, val = mnist_small
    model = tiny_cnn()
    fit(model, train, epochs=2, lr=0.05, batch_size=20)
    return model


def test_predict_shapes_and_modes(trained, mnist_small):
    _, val = mnist_small
    trained.train()
    logits = predict(trained, val, batch_size=32)
    assert logits.shape == (len(val), 10) and logits.dtype == torch.float32
    assert logits.device.type == "cpu"
    assert trained.training  # the mode is restored...
    # ...and dropout was off: the same computation repeated gives the same bits, and other
    # batch sizes the same logits up to rounding (other batch sizes may run other kernels,
    # whose last bits differ from CPU to CPU, so those are compared with a tolerance)
    assert torch.equal(predict(trained, val.images, batch_size=32), logits)
    assert torch.allclose(predict(trained, val.images), logits, rtol=1e-4, atol=1e-5)
    assert torch.allclose(predict(trained, val.images[:7]), logits[:7], rtol=1e-4, atol=1e-5)
    trained.eval()


def test_evaluate_agrees_with_sklearn(trained, mnist_small):
    _, val = mnist_small
    scores = evaluate(trained, val)
    logits = predict(trained, val)
    labels = val.labels.numpy()
    assert scores["accuracy"] == pytest.approx(accuracy_score(labels, logits.argmax(1).numpy()))
    probabilities = logits.double().softmax(dim=1).numpy()
    assert scores["loss"] == pytest.approx(log_loss(labels, probabilities, labels=range(10)),
                                           rel=1e-5)
    assert 0.1 < scores["accuracy"] < 1  # a partly trained model: neither chance nor perfect


def test_confident_mistakes_most_confident_first():
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    logits = torch.tensor([
        [5.0, 0.0, 0.0],  # right
        [3.0, 0.0, 0.0],  # wrong (predicts 0), fairly confident
        [0.0, 9.0, 0.0],  # wrong (predicts 1), very confident
        [0.0, 0.5, 0.0],  # wrong (predicts 1), barely
        [0.0, 4.0, 0.0],  # right
        [0.0, 0.0, 1.0],  # right
    ])
    assert confident_mistakes(logits, labels, k=10).tolist() == [2, 1, 3]
    assert confident_mistakes(logits, labels, k=2).tolist() == [2, 1]
    assert confident_mistakes(logits[[0, 4, 5]], labels[[0, 4, 5]]).tolist() == []


def test_history_columns():
    history = History([{"epoch": 1, "train_loss": 2.0}, {"epoch": 2, "train_loss": 1.5}])
    assert history.column("train_loss") == [2.0, 1.5]
    assert history.last == {"epoch": 2, "train_loss": 1.5} and len(history) == 2
    with pytest.raises(KeyError, match=re.escape("no 'val_acc'; it has ['epoch', 'train_loss']")):
        history.column("val_acc")


def test_best_epoch_is_recorded_without_early_stopping(mnist_small):
    train, val = mnist_small
    history = fit(tiny_cnn(), train, val, epochs=4, lr=0.05, seed=0, device="cpu")
    losses = history.column("val_loss")
    assert history.best_epoch == 1 + losses.index(min(losses))
    assert not history.stopped_early
    assert fit(tiny_cnn(), train, epochs=1, device="cpu").best_epoch is None
