"""ftcore.pretrained: the cached pre-trained model and checkpoints that never run code."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn
from torchvision.models import resnet18

import ftcore.pretrained
from ftcore.data import CorruptFileError
from ftcore.data.cache import safe_load
from ftcore.models import SmallCNN
from ftcore.pretrained import (
    PretrainConfig,
    checkpoint_path,
    load_checkpoint,
    pretrained_cnn,
    save_checkpoint,
)
from ftcore.train import evaluate

#: A pre-training run that takes about a second: one epoch of a narrow model.
TINY = PretrainConfig(epochs=1, width=4, hidden=16, batch_size=128)


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture
def pretrain_calls(monkeypatch) -> list[PretrainConfig]:
    """The configs that ``pretrain`` was called with (it still trains for real)."""
    calls, real = [], ftcore.pretrained.pretrain

    def counting(config, **kwargs):
        calls.append(config)
        return real(config, **kwargs)

    monkeypatch.setattr(ftcore.pretrained, "pretrain", counting)
    return calls


@pytest.fixture
def small_model() -> SmallCNN:
    """A SmallCNN with non-default BatchNorm statistics (as after training)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = SmallCNN(num_classes=3, width=4, hidden=8, dropout=0.1)
        model.train()(torch.rand(16, 1, 28, 28))  # update the running statistics
    return model.eval()


# ---------------------------------------------------------------- the cached model

def test_pretrained_cnn_trains_once_then_reuses_the_cache(mnist_root, mnist, pretrain_calls):
    first = pretrained_cnn(TINY)  # the data root comes from FTCORE_DATA
    path = checkpoint_path(TINY, mnist_root)
    assert pretrain_calls == [TINY]
    assert path.exists() and path.parent == mnist_root / "pretrained"
    assert not first.training
    assert evaluate(first, mnist.test)["accuracy"] > 0.5  # trained: chance is 0.1
    second = pretrained_cnn(TINY, root=mnist_root)
    assert pretrain_calls == [TINY]  # not trained again
    assert same_weights(first, second) and not second.training
    assert (second.config.width, second.config.hidden) == (4, 16)
    saved = safe_load(path)
    assert saved["pretrain_config"]["epochs"] == 1 and len(saved["history"]) == 1
    pretrained_cnn(TINY, retrain=True)
    assert pretrain_calls == [TINY, TINY]


def test_a_different_config_gets_its_own_file(mnist_root, pretrain_calls):
    other = dataclasses.replace(TINY, seed=1)
    a, b = pretrained_cnn(TINY), pretrained_cnn(other)
    assert pretrain_calls == [TINY, other]
    assert checkpoint_path(TINY) != checkpoint_path(other)
    assert sorted(p.name for p in (mnist_root / "pretrained").iterdir()) == \
        sorted([checkpoint_path(TINY).name, checkpoint_path(other).name])
    assert not same_weights(a, b)


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(PretrainConfig)])
def test_every_setting_changes_the_cache_key(field):
    value = getattr(TINY, field)
    if isinstance(value, bool):
        changed = not value
    elif isinstance(value, int):
        changed = value * 2 + 1
    elif isinstance(value, float):
        changed = value / 2  # stays valid: momentum and dropout must stay below 1
    elif isinstance(value, tuple):
        changed = value[:5]
    else:  # another valid choice (PretrainConfig refuses unknown ones)
        changed = {"mnist": "uci-digits", "cosine": "constant", "constant": "cosine"}[value]
    assert dataclasses.replace(TINY, **{field: changed}).key() != TINY.key()
    assert dataclasses.replace(TINY).key() == TINY.key()


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_cache_is_retrained_with_a_warning(mnist_root, pretrain_calls, small_model,
                                                     damage):
    path = checkpoint_path(TINY, mnist_root)
    path.parent.mkdir(parents=True)
    if damage == "garbage":
        path.write_bytes(b"this is not a checkpoint" * 100)
    else:
        save_checkpoint(small_model, path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.warns(UserWarning, match="Retraining"):
        model = pretrained_cnn(TINY)
    assert pretrain_calls == [TINY]
    assert same_weights(load_checkpoint(path), model)  # the cache was replaced


# ---------------------------------------------------------------- checkpoints

def test_checkpoint_round_trip_is_exact(tmp_path, small_model):
    path = save_checkpoint(small_model, tmp_path / "model.pt", note="hello",
                           history=[{"epoch": 1, "val_acc": 0.5}])
    loaded = load_checkpoint(path)
    assert isinstance(loaded, SmallCNN) and loaded.config == small_model.config
    assert same_weights(loaded, small_model) and not loaded.training
    extra = safe_load(path)
    assert extra["note"] == "hello" and extra["history"] == [{"epoch": 1, "val_acc": 0.5}]
    target = SmallCNN(num_classes=3, width=4, hidden=8, dropout=0.1)
    assert load_checkpoint(path, target) is target and same_weights(target, small_model)


def test_checkpoint_round_trip_without_batch_norm(tmp_path):
    model = SmallCNN(num_classes=2, width=2, hidden=4, batch_norm=False)
    loaded = load_checkpoint(save_checkpoint(model, tmp_path / "m.pt"))
    assert loaded.config.batch_norm is False and same_weights(loaded, model)


def test_loading_into_another_configuration_names_both(tmp_path, small_model):
    path = save_checkpoint(small_model, tmp_path / "model.pt")
    with pytest.raises(ValueError) as error:
        load_checkpoint(path, SmallCNN(num_classes=10, width=4, hidden=8, dropout=0.1))
    message = str(error.value)
    assert "SmallCNN(num_classes=3, width=4, hidden=8" in message
    assert "SmallCNN(num_classes=10, width=4, hidden=8" in message


@pytest.mark.parametrize("make", [lambda: resnet18(weights=None), lambda: nn.Linear(2, 2)],
                         ids=["resnet18", "linear"])
def test_loading_into_another_architecture_raises(tmp_path, small_model, make):
    path = save_checkpoint(small_model, tmp_path / "model.pt")
    model = make()
    with pytest.raises(ValueError, match=f"does not fit a {type(model).__name__}"):
        load_checkpoint(path, model)


def test_only_smallcnn_checkpoints_are_saved(tmp_path):
    with pytest.raises(TypeError, match="Linear"):
        save_checkpoint(nn.Linear(2, 2), tmp_path / "linear.pt")


@pytest.mark.parametrize("content", ["garbage", "truncated", "not_a_dict", "other_format"])
def test_corrupt_checkpoint_raises(tmp_path, small_model, content):
    path = tmp_path / "model.pt"
    if content == "garbage":
        path.write_bytes(bytes(range(256)) * 4)
    elif content == "truncated":
        save_checkpoint(small_model, path)
        path.write_bytes(path.read_bytes()[:1000])
    elif content == "not_a_dict":
        torch.save([1, 2, 3], path)
    else:
        torch.save({"format": "someone-else/7", "model_config": {}, "state_dict": {}}, path)
    with pytest.raises(CorruptFileError, match="model.pt"):
        load_checkpoint(path)


def test_missing_checkpoint_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        load_checkpoint(tmp_path / "nowhere.pt")


# A pickled object whose unpickling would call `record`: code run by loading a file.
RAN: list[str] = []


def record(what: str) -> str:
    RAN.append(what)
    return what


class Payload:
    def __reduce__(self):
        return record, ("code ran while loading",)


def test_checkpoints_load_with_weights_only(tmp_path, small_model):
    path = save_checkpoint(small_model, tmp_path / "model.pt", payload=Payload())
    RAN.clear()
    with pytest.raises(CorruptFileError):
        load_checkpoint(path)
    assert RAN == []  # refused, and nothing ran
    torch.load(path, weights_only=False)  # the payload is real: an unsafe load would run it
    assert RAN == ["code ran while loading"]
    RAN.clear()


def test_read_checkpoint_returns_the_extras(tmp_path, small_model):
    path = save_checkpoint(small_model, tmp_path / "m.pt", history=[{"epoch": 1, "val_acc": 0.5}],
                           note="hello")
    blob = ftcore.pretrained.read_checkpoint(path)
    assert blob["history"] == [{"epoch": 1, "val_acc": 0.5}] and blob["note"] == "hello"
    assert blob["model_config"] == dataclasses.asdict(small_model.config)
