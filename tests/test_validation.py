"""No silent wrong result (issue 13): every bad input found by trying ftcore as a new user would
raises a clear error (its type, and a message naming the problem and the fix) before any work is
done or any object changed; files and caches that cannot be trusted are rebuilt or refused."""

from __future__ import annotations

import copy
import math
import os
import re
import time

import pytest
import torch
from helpers import tiny_cnn
from torch import nn

from ftcore.checks import ParameterError, check_int, check_number
from ftcore.data import ImageSet, keep_classes, load_dataset, make_loader, stratified_split
from ftcore.data.cache import atomic_save, clean_stale_tmp, data_root
from ftcore.models import MLP, SmallCNN
from ftcore.nn import Dropout
from ftcore.optim import SGD
from ftcore.pretrained import PretrainConfig, checkpoint_path, load_checkpoint, pretrained_cnn
from ftcore.regularization import l2_penalty
from ftcore.runtime import pick_device
from ftcore.shifts import apply_shift, evaluate_shifts
from ftcore.surgery import freeze, prepare, replace_head
from ftcore.train import History, evaluate, fit, predict

DIGITS = tuple(map(str, range(10)))


def images_set(images: torch.Tensor, n_classes: int = 2) -> ImageSet:
    return ImageSet(images, torch.arange(len(images)) % n_classes, DIGITS[:n_classes])


@pytest.fixture(scope="module")
def tiny(mnist_small):
    """40 real MNIST 0s and 1s."""
    return keep_classes(mnist_small[0], [0, 1])


# --- the shared checks ------------------------------------------------------------------------

@pytest.mark.parametrize("value", [2.5, "3", True, None, -1, torch.tensor(3)])
def test_check_int_refuses_what_is_not_a_whole_number_in_range(value):
    with pytest.raises(ParameterError, match=r"epochs=.* must be a whole number >= 0"):
        check_int(value, "epochs", low=0)


@pytest.mark.parametrize("value", ["0.1", math.inf, math.nan, 0, -1, None, True])
def test_check_number_refuses_strings_non_finite_and_out_of_range(value):
    with pytest.raises(ParameterError, match=r"lr=.* must be a finite number > 0"):
        check_number(value, "lr", low=0, low_open=True)


def test_parameter_error_is_both_a_value_and_a_type_error():
    assert issubclass(ParameterError, ValueError) and issubclass(ParameterError, TypeError)


# --- ImageSet: the boundary of every image ----------------------------------------------------

@pytest.mark.parametrize("bad, message", [
    (math.nan, r"1 non-finite pixel value\(s\) \(NaN or inf\).*nan_to_num"),
    (math.inf, r"non-finite pixel.*NaN or inf"),
    (255.0, r"\[0, 1\], got .* to 255: divide uint8 pixels by 255"),
    (-0.5, r"got -0.5 to .*do not normalise"),
])
def test_imageset_refuses_non_finite_and_out_of_range_pixels(bad, message):
    images = torch.rand(4, 1, 28, 28)
    images[1, 0, 3, 3] = bad
    with pytest.raises(ValueError, match=message):
        images_set(images)


@pytest.mark.parametrize("images, message", [
    (torch.rand(4, 1, 28, 28, dtype=torch.float64), r"float32, got torch.float64.*\.float\(\)"),
    ((torch.rand(4, 1, 28, 28) * 255).to(torch.uint8), "torch.uint8: divide by 255"),
    (torch.rand(4, 28, 28), r"\(N, 1, H, W\), got \(4, 28, 28\).*unsqueeze\(1\)"),
    (torch.rand(4, 1, 28, 28).numpy(), "images must be a Tensor, got ndarray"),
])
def test_imageset_refuses_wrong_dtypes_shapes_and_types(images, message):
    with pytest.raises(ValueError, match=message):
        images_set(images)


def test_imageset_refuses_bad_labels_and_classes():
    images = torch.rand(4, 1, 28, 28)
    with pytest.raises(ValueError, match=r"int64.*got torch.int32.*labels.long\(\)"):
        ImageSet(images, torch.zeros(4, dtype=torch.int32), ("a",))
    with pytest.raises(ValueError, match="non-empty tuple of class names"):
        ImageSet(images, torch.zeros(4, dtype=torch.int64), ["a"])


def test_a_model_other_than_smallcnn_cannot_be_fed_0_to_255_images():
    """The range is checked by ImageSet, so any model (here a plain nn.Sequential) is safe."""
    with pytest.raises(ValueError, match="divide uint8 pixels by 255"):
        images_set(torch.randint(0, 256, (4, 1, 28, 28)).float())


def test_shifts_and_models_refuse_nan_pixels():
    images = torch.rand(3, 1, 28, 28)
    images[0, 0, 0, 0] = math.nan
    with pytest.raises(ValueError, match="non-finite"):
        apply_shift(images, "rotation", 3)
    with pytest.raises(ValueError, match="non-finite"):
        SmallCNN(width=2, hidden=4)(images)
    with pytest.raises(ValueError, match="non-finite"):
        MLP(hidden=(4,))(images)


# --- data: splits, seeds, classes, the data root ------------------------------------------------

@pytest.mark.parametrize("seed, message", [
    (None, "seed=None would give a different split on every call"),
    (-1, "seed=-1 must be a whole number from 0 to 4294967295"),
    (1.5, "seed=1.5 must be a whole number"),
    ("1", "seed='1' must be a whole number"),
])
def test_load_dataset_refuses_bad_seeds_before_loading(seed, message, monkeypatch):
    monkeypatch.setattr("ftcore.data._load_raw", lambda *a: pytest.fail("loaded the data"))
    with pytest.raises(ValueError, match=message):
        load_dataset("mnist", seed=seed)


@pytest.mark.parametrize("fraction, message", [
    (0, "fraction=0 must be a whole number from 1 to 39"),
    (0.0, r"fraction=0.0 must be in \(0, 1\)"),
    (1.0, r"fraction=1.0 must be in \(0, 1\)"),
    (40, "fraction=40 must be a whole number from 1 to 39"),
    ("0.2", "fraction='0.2' must be a whole number"),
])
def test_stratified_split_refuses_bad_fractions(tiny, fraction, message):
    with pytest.raises(ValueError, match=message):
        stratified_split(tiny, fraction)


@pytest.mark.parametrize("classes", [[1.5, 2.7], ["1", "2"], "12", 3])
def test_keep_classes_refuses_labels_that_are_not_whole_numbers(mnist_small, classes):
    with pytest.raises(ValueError, match="classes|label"):
        keep_classes(mnist_small[0], classes)


def test_make_loader_refuses_bad_arguments(tiny):
    with pytest.raises(ValueError, match="batch_size=0"):
        make_loader(tiny, batch_size=0)
    with pytest.raises(ValueError, match="batch_size=2.5"):
        make_loader(tiny, batch_size=2.5)


@pytest.mark.parametrize("how", ["env", "root"])
def test_a_data_root_that_is_a_file_names_its_setting(tmp_path, monkeypatch, how):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    if how == "env":
        monkeypatch.setenv("FTCORE_DATA", str(blocker / "sub"))
        with pytest.raises(ValueError, match=r"data root \(FTCORE_DATA\).*is a file, not a folder"):
            data_root()
    else:
        with pytest.raises(ValueError, match=r"data root \(root=\).*is a file, not a folder"):
            load_dataset("mnist", root=blocker)
    with pytest.raises(ValueError, match=r"data root \(--data-root\)"):
        data_root(blocker, setting="--data-root")


def test_stale_tmp_files_of_killed_writes_are_cleaned(tmp_path):
    stale, fresh = tmp_path / ".cache.pt.abc.tmp", tmp_path / ".cache.pt.def.tmp"
    for f in (stale, fresh):
        f.write_bytes(b"half a file")
    hour_ago = time.time() - 2 * 3600
    os.utime(stale, (hour_ago, hour_ago))
    atomic_save({"a": 1}, tmp_path / "other.pt")  # any write into the folder cleans up
    assert not stale.exists() and fresh.exists()  # a write in progress is left alone
    assert clean_stale_tmp(tmp_path) == []


# --- fit: types and ranges before any work ----------------------------------------------------

@pytest.mark.parametrize("kwargs, error, message", [
    ({"epochs": 2.5}, ValueError, "epochs=2.5 must be a whole number >= 1"),
    ({"lr": "0.1"}, ValueError, "lr='0.1' must be a finite number > 0"),
    ({"lr": math.inf}, ValueError, "lr=inf must be a finite number > 0"),
    ({"batch_size": 0}, ValueError, "batch_size=0 must be a whole number >= 1"),
    ({"momentum": 1.0}, ValueError, r"momentum=1.0 must be in \[0, 1\)"),
    ({"penalty": 0.1}, ValueError, "penalty=0.1 must be a function"),
    ({"on_divergence": "ignore"}, ValueError, "on_divergence='ignore' is not one of"),
    ({"device": "cuda:7"}, ValueError, "device='cuda:7'"),
])
def test_fit_checks_its_arguments_before_touching_the_model(tiny, kwargs, error, message):
    model = tiny_cnn(num_classes=2)
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(error, match=message):
        fit(model, tiny, epochs=kwargs.pop("epochs", 1), **kwargs)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_fit_refuses_a_plain_dataset_and_a_positional_epoch_count(tiny):
    dataset = torch.utils.data.TensorDataset(tiny.images, tiny.labels)
    with pytest.raises(TypeError, match=r"train must be an ImageSet, got TensorDataset.*"
                                        r"ImageSet\("):
        fit(tiny_cnn(num_classes=2), dataset)
    with pytest.raises(TypeError, match=r"val must be an ImageSet, got int.*epochs=5"):
        fit(tiny_cnn(num_classes=2), tiny, 5)


def test_fit_refuses_an_optimizer_of_another_model(tiny):
    model, other = tiny_cnn(num_classes=2), tiny_cnn(num_classes=2, seed=1)
    with pytest.raises(ValueError, match="optimizer holds none of the model's trainable"):
        fit(model, tiny, epochs=1, optimizer=SGD(other.parameters(), lr=0.1))


def test_an_exhausted_parameter_generator_says_so():
    parameters = tiny_cnn().parameters()
    list(parameters)
    with pytest.raises(ValueError, match="generator that is empty once read"):
        SGD(parameters, lr=0.1)


def test_a_penalty_that_returns_a_vector_is_refused(tiny):
    vector = lambda model: torch.stack([p.pow(2).sum() for p in model.parameters()])
    with pytest.raises(ValueError, match=r"returned a tensor of shape \(\d+,\).*scalar"):
        fit(tiny_cnn(num_classes=2), tiny, epochs=1, penalty=vector)
    fit(tiny_cnn(num_classes=2), tiny, epochs=1, penalty=l2_penalty(1e-3))  # a scalar is fine


@pytest.mark.parametrize("lr", [1e4, 1e30])
def test_fit_stops_when_training_diverges_naming_the_learning_rate(tiny, lr):
    with pytest.raises(FloatingPointError, match=r"diverged in epoch 1.*" +
                       re.escape(f"lr={lr:g}") + ".*on_divergence='stop'"):
        fit(tiny_cnn(num_classes=2), tiny, epochs=3, lr=lr, batch_size=8)


def test_a_sweep_can_record_a_divergence_instead(tiny, mnist):
    val = keep_classes(mnist.val, [0, 1])
    history = fit(tiny_cnn(num_classes=2), tiny, val, epochs=3, lr=1e30, batch_size=8,
                  on_divergence="stop")
    assert isinstance(history, History) and history.diverged and len(history) == 1
    assert not history.last["train_loss"] <= 1e4 and math.isnan(history.last["val_acc"])
    assert history.best_epoch is None
    sane = fit(tiny_cnn(num_classes=2), tiny, val, epochs=1, lr=0.05, on_divergence="stop")
    assert not sane.diverged and sane.best_epoch == 1  # the control: a sane rate trains


def test_predict_and_evaluate_check_their_arguments(tiny):
    with pytest.raises(TypeError, match="model must be a Module, got str"):
        predict("resnet", tiny)
    with pytest.raises(TypeError, match="data must be an ImageSet, got Tensor"):
        evaluate(tiny_cnn(num_classes=2), tiny.images)


def test_pick_device_refuses_a_device_this_machine_lacks():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="device='cuda' was asked for, but this machine has "
                                         "only 'cpu'"):
        pick_device("cuda")
    with pytest.raises(ValueError, match="device='gpu' is not a device"):
        pick_device("gpu")


def test_dropout_refuses_a_string():
    with pytest.raises(ValueError, match=r"dropout p='0.5' must be in \[0, 1\)"):
        Dropout("0.5")


# --- surgery: the right layer, checked before any change --------------------------------------

class HiddenFc(nn.Module):
    """A network with a hidden layer called ``fc`` and its output layer called ``out``."""

    def __init__(self):
        super().__init__()
        self.fc, self.out = nn.Linear(784, 32), nn.Linear(32, 10)

    def forward(self, x):
        return self.out(self.fc(x.flatten(1)).relu())


def test_replace_head_never_replaces_a_hidden_layer_called_fc():
    model = HiddenFc()
    hidden = model.fc
    with pytest.raises(ValueError, match=r"model.fc .* not the output layer: the last "
                                         r"nn.Linear is model.out.*model.out = nn.Linear\(32"):
        replace_head(model, 5)
    assert model.fc is hidden


def test_replace_head_of_a_string_says_pass_the_network():
    with pytest.raises(TypeError, match="model must be a Module, got str.*pass the network"):
        replace_head("resnet", 5)


@pytest.mark.parametrize("part", ["", None, 3])
def test_freeze_refuses_an_empty_or_non_string_name(part):
    model = tiny_cnn()
    with pytest.raises(ValueError, match="is not a part's name"):
        freeze(model, part)
    assert all(p.requires_grad for p in model.parameters())  # nothing was frozen


def test_prepare_validates_before_replacing_the_head():
    model = tiny_cnn()
    head = model.head
    for kwargs in ({"frozen_blocks": 7}, {"frozen_blocks": "conv9"}, {"seed": -1}):
        with pytest.raises(ValueError):
            prepare(model, "partial", 5, **kwargs)
        assert model.head is head  # the pre-trained head is still there


# --- the pre-trained model's cache --------------------------------------------------------------

TINY = PretrainConfig(classes=(0, 1), width=2, hidden=4, epochs=1, batch_size=256)


@pytest.mark.parametrize("kwargs, message", [
    ({"classes": (3,)}, "at least two distinct labels"),
    ({"classes": (1, 1)}, "at least two distinct labels"),
    ({"classes": (0, 10)}, "a label in classes=10"),
    ({"source": "mnits"}, "source='mnits' is not one of"),
    ({"lr": 0}, "lr=0 must be"),
    ({"epochs": 0}, "epochs=0 must be"),
    ({"lr_schedule": "linear"}, "lr_schedule='linear' is not one of"),
])
def test_pretrain_config_refuses_impossible_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PretrainConfig(**kwargs)


def test_a_cached_model_of_another_architecture_is_rebuilt(mnist_root):
    from ftcore.pretrained import save_checkpoint

    path = checkpoint_path(TINY)
    save_checkpoint(SmallCNN(5, width=3), path)  # the wrong model, at the right path
    with pytest.warns(UserWarning, match=r"holds a SmallCNN\(num_classes=5, width=3"):
        model = pretrained_cnn(TINY)
    assert model.config.num_classes == 2 and model.config.width == 2
    assert load_checkpoint(path).config == model.config  # and the cache now holds the right one


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_a_read_only_data_root_does_not_lose_the_trained_model(mnist_root):
    folder = mnist_root / "pretrained"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.warns(UserWarning, match=r"cannot be written.*WITHOUT caching"):
            model = pretrained_cnn(TINY)
        assert isinstance(model, SmallCNN) and not checkpoint_path(TINY).exists()
    finally:
        folder.chmod(0o755)


def test_unwritable_data_root_is_reported_before_training(mnist_root, monkeypatch):
    """Also as root (where chmod does not stop writes): the check runs before pretrain."""
    import ftcore.pretrained as pretrained

    def unwritable(folder, root=None):
        raise PermissionError(f"the data root (FTCORE_DATA) is {str(folder)!r}, which cannot "
                              "be written")

    calls = []
    monkeypatch.setattr(pretrained, "check_writable", unwritable)
    real = pretrained.pretrain
    monkeypatch.setattr(pretrained, "pretrain", lambda *a, **k: calls.append(1) or real(*a, **k))
    with pytest.warns(UserWarning, match="cannot be written.*WITHOUT caching") as warned:
        model = pretrained_cnn(TINY)
    assert calls == [1] and len(warned) == 1 and not checkpoint_path(TINY).exists()
    assert isinstance(model, SmallCNN)


def test_load_checkpoint_of_a_plain_state_dict_says_how_to_load_it(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(tiny_cnn().state_dict(), path)
    with pytest.raises(ValueError, match=r"plain state_dict.*model.load_state_dict\(torch.load"):
        load_checkpoint(path)


# --- shifts -------------------------------------------------------------------------------------

def test_evaluate_shifts_refuses_a_lone_string(tiny):
    with pytest.raises(ValueError, match=r"shifts='rotation' must be a list.*\['rotation'\]"):
        evaluate_shifts(tiny_cnn(num_classes=2), tiny, shifts="rotation")


def test_a_sweep_can_train_through_a_divergence_to_show_it(tiny):
    history = fit(tiny_cnn(num_classes=2), tiny, epochs=3, lr=1e4, batch_size=8,
                  on_divergence="continue")
    assert history.diverged and len(history) == 3  # every epoch ran, and the blow-up is noted
    with pytest.raises(ValueError, match="on_divergence"):
        fit(tiny_cnn(num_classes=2), tiny, epochs=1, on_divergence="ignore")
