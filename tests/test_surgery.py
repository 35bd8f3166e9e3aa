"""Tests for ftcore.surgery: head replacement, freezing, parameter groups, strategies.

Big torchvision models whose weights the test never uses are built on the ``meta`` device
(shapes only, no memory, milliseconds), so head finding on VGG and ViT stays fast.
"""

import copy

import pytest
import torch
import torchvision
from helpers import BODY_BLOCKS, random_images, tiny_cnn
from torch import nn

from ftcore import SGD, count_parameters, fit
from ftcore.pretrained import load_checkpoint, save_checkpoint
from ftcore.surgery import (
    STRATEGIES,
    blocks,
    body_blocks,
    find_head,
    freeze,
    freeze_below,
    is_frozen,
    param_groups,
    prepare,
    reinitialise,
    replace_head,
    trainable_summary,
    unfreeze,
)
from ftcore.train import set_train_mode


def tiny_data(n=48, classes=5, seed=0):
    return random_images(n, classes, seed)


def meta(builder):
    with torch.device("meta"):
        return builder(weights=None)


def trainable_names(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def state_copy(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_same_state(before, module):
    after = module.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert torch.equal(value, after[key]), f"{key} changed"


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None)


# --- find_head / replace_head -----------------------------------------------------------------

def test_find_head_small_cnn():
    model = tiny_cnn()
    assert find_head(model) == ("head", model.head)


@pytest.mark.parametrize("builder, name", [
    (torchvision.models.resnet18, "fc"),
    (torchvision.models.mobilenet_v3_small, "classifier.3"),
    (torchvision.models.vgg11, "classifier.6"),
    (torchvision.models.vit_b_16, "heads.head"),
])
def test_find_head_torchvision(builder, name):
    model = meta(builder)
    found, module = find_head(model)
    assert found == name
    assert module is model.get_submodule(name)
    assert module.out_features == 1000  # ImageNet's classes


@pytest.mark.parametrize("builder", [torchvision.models.resnet18,
                                     torchvision.models.mobilenet_v3_small,
                                     torchvision.models.vgg11, torchvision.models.vit_b_16])
def test_replace_head_torchvision(builder):
    model = meta(builder)
    name, old = find_head(model)
    others = {n: p for n, p in model.named_parameters() if not n.startswith(name + ".")}
    assert replace_head(model, 7) is model
    new_name, new = find_head(model)
    assert new_name == name and new is not old
    assert (new.in_features, new.out_features) == (old.in_features, 7)
    assert new.weight.device == old.weight.device
    kept = {n: p for n, p in model.named_parameters() if not n.startswith(name + ".")}
    assert kept.keys() == others.keys()
    assert all(kept[n] is others[n] for n in kept)  # the body's parameters are the same objects


def test_replace_head_keeps_body_and_changes_output():
    model = tiny_cnn()
    body = state_copy(model.features)
    replace_head(model, 3)
    assert_same_state(body, model.features)
    assert model.head.in_features == 16 and model.head.out_features == 3
    assert all(p.requires_grad for p in model.head.parameters())
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 3)


def test_replace_head_resnet_forward(resnet):
    model = copy.deepcopy(resnet)
    body = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("fc.")}
    replace_head(model, 4)
    model.eval()
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 4)
    state = model.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in body.items())


def test_replace_head_seed_is_reproducible_and_leaves_global_rng_alone():
    a, b = tiny_cnn(), tiny_cnn()
    rng = torch.get_rng_state()
    replace_head(a, 5, seed=3)
    assert torch.equal(rng, torch.get_rng_state())
    replace_head(b, 5, seed=3)
    assert torch.equal(a.head.weight, b.head.weight)
    replace_head(b, 5, seed=4)
    assert not torch.equal(a.head.weight, b.head.weight)


def test_replace_head_updates_checkpoint_config(tmp_path):
    model = replace_head(tiny_cnn(), 5)
    assert model.config.num_classes == 5
    loaded = load_checkpoint(save_checkpoint(model, tmp_path / "m.pt"))
    assert loaded.head.out_features == 5
    assert torch.equal(loaded.head.weight, model.head.weight)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "5"])
def test_replace_head_rejects_bad_class_counts(bad):
    with pytest.raises(ValueError, match=r"num_classes=.* must be a whole number >= 1"):
        replace_head(tiny_cnn(), bad)


def test_unfindable_head_names_where_it_looked():
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    with pytest.raises(ValueError) as info:
        find_head(model)
    message = str(info.value)
    assert "Sequential" in message
    for place in ("model.head", "model.fc", "model.classifier[-1]", "model.heads.head"):
        assert place in message
    with pytest.raises(ValueError, match="cannot find the head"):
        replace_head(model, 3)
    with pytest.raises(ValueError, match="cannot find the head"):
        prepare(model, "full", 3)


# --- blocks, freeze, unfreeze -----------------------------------------------------------------

def test_blocks_small_cnn_and_resnet(resnet):
    assert [n for n, _ in blocks(tiny_cnn())] == BODY_BLOCKS + ["head"]
    assert body_blocks(tiny_cnn()) == BODY_BLOCKS
    assert body_blocks(resnet) == ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4"]
    # every parameter of these models lies in exactly one block
    for model in (tiny_cnn(), resnet):
        assert sum(count_parameters(m) for _, m in blocks(model)) == count_parameters(model)


def test_freeze_and_unfreeze_whole_model():
    model = tiny_cnn()
    assert freeze(model) is model
    assert trainable_names(model) == set()
    assert unfreeze(model) is model
    assert trainable_names(model) == {n for n, _ in model.named_parameters()}


def test_freeze_parts_by_dotted_name():
    model = tiny_cnn()
    freeze(model, "features.conv1", "features.conv2")
    assert is_frozen(model.features.conv1) and is_frozen(model.features.conv2)
    assert not is_frozen(model.features.fc) and not is_frozen(model.head)
    freeze(model, "features")
    assert trainable_names(model) == {"head.weight", "head.bias"}
    unfreeze(model, "features.fc")
    assert trainable_names(model) == {"head.weight", "head.bias", "features.fc.linear.weight",
                                      "features.fc.linear.bias"}
    freeze(model, "head.bias")  # a single parameter works too
    assert not model.head.bias.requires_grad and model.head.weight.requires_grad


def test_unknown_part_lists_valid_names_and_changes_nothing():
    model = tiny_cnn()
    with pytest.raises(ValueError) as info:
        freeze(model, "head", "feature")
    message = str(info.value)
    assert "'feature'" in message
    for name in ["features", "head"] + BODY_BLOCKS:
        assert name in message
    assert all(p.requires_grad for p in model.parameters())  # "head" was not frozen either
    with pytest.raises(ValueError, match="'layer5'"):
        unfreeze(tiny_cnn(), "layer5")


def test_freeze_below_counts_blocks_from_the_input():
    model = tiny_cnn()
    for k in range(len(BODY_BLOCKS) + 1):
        freeze_below(model, k)
        frozen = [name for name, m in blocks(model) if is_frozen(m)]
        assert frozen == BODY_BLOCKS[:k]
    assert not is_frozen(model.head)
    freeze_below(model, "features.fc")
    assert [n for n, m in blocks(model) if is_frozen(m)] == BODY_BLOCKS[:2]


def test_freeze_below_on_resnet(resnet):
    model = copy.deepcopy(resnet)
    freeze_below(model, "layer3")
    assert [n for n, m in blocks(model) if is_frozen(m)] == ["conv1", "bn1", "layer1", "layer2"]
    freeze_below(model, 0)
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("bad", [-1, 4, 1.0, "head", "conv1"])
def test_freeze_below_rejects_bad_depths(bad):
    with pytest.raises(ValueError, match="features.conv1, features.conv2, features.fc"):
        freeze_below(tiny_cnn(), bad)


def test_trainable_summary_counts_per_block():
    model = prepare(tiny_cnn(), "feature_extraction", 5)
    rows = trainable_summary(model)
    assert [r["name"] for r in rows] == BODY_BLOCKS + ["head"]
    assert sum(r["total"] for r in rows) == count_parameters(model)
    assert sum(r["trainable"] for r in rows) == count_parameters(model, trainable_only=True)
    assert [r["trainable"] for r in rows] == [0, 0, 0, 16 * 5 + 5]
    assert rows[-1]["total"] == 16 * 5 + 5


def test_trainable_summary_reports_parameters_outside_blocks():
    model = meta(torchvision.models.vit_b_16)  # class_token belongs to no child module
    rows = trainable_summary(model)
    assert rows[-1]["name"] == "(other)" and rows[-1]["total"] == 768
    assert sum(r["total"] for r in rows) == count_parameters(model)
    prepare(model, "feature_extraction", 3)
    assert sum(r["trainable"] for r in trainable_summary(model)) == 768 * 3 + 3


# --- frozen really means fixed ----------------------------------------------------------------

def test_frozen_body_is_bit_for_bit_unchanged_after_fit():
    model = tiny_cnn()
    # non-default BatchNorm statistics, so any update would show
    with torch.no_grad():
        for bn in (model.features.conv1.norm, model.features.conv2.norm):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
    freeze(model, "features")
    body, head = state_copy(model.features), model.head.weight.detach().clone()
    # an optimizer that is handed every parameter, with momentum and strong weight decay
    optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.5)
    fit(model, tiny_data(), epochs=2, batch_size=16, optimizer=optimizer, progress=False)
    assert_same_state(body, model.features)  # weights, running mean/var, num_batches_tracked
    assert all(p.grad is None for p in model.features.parameters())
    assert all(p not in optimizer.state for p in model.features.parameters())
    assert not torch.equal(head, model.head.weight)  # the trainable part did train


def test_frozen_parts_fixed_with_torch_sgd_and_param_groups():
    model = freeze_below(tiny_cnn(), 2)
    frozen = state_copy(model.features.conv1), state_copy(model.features.conv2)
    fc = model.features.fc.linear.weight.detach().clone()
    optimizer = torch.optim.SGD(param_groups(model, 0.1), momentum=0.9, weight_decay=0.1)
    fit(model, tiny_data(), epochs=2, batch_size=16, optimizer=optimizer, progress=False)
    assert_same_state(frozen[0], model.features.conv1)
    assert_same_state(frozen[1], model.features.conv2)
    assert not torch.equal(fc, model.features.fc.linear.weight)


def test_frozen_batchnorm_statistics_the_trap_and_the_fix():
    model = freeze(tiny_cnn(), "features")
    bn = model.features.conv1.norm
    before = bn.running_mean.clone()
    x = torch.rand(8, 1, 28, 28)
    set_train_mode(model)
    assert not bn.training and model.head.training
    model(x)
    assert torch.equal(before, bn.running_mean)
    model.train()  # the trap: plain train mode updates statistics of frozen BatchNorm
    model(x)
    assert not torch.equal(before, bn.running_mean)


def test_resnet_frozen_blocks_stay_fixed_in_a_training_step(resnet):
    model = freeze_below(replace_head(copy.deepcopy(resnet), 3, seed=0), "layer4")
    frozen = {n: state_copy(model.get_submodule(n)) for n in ("conv1", "bn1", "layer1",
                                                               "layer2", "layer3")}
    layer4 = state_copy(model.layer4)
    optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    set_train_mode(model)
    for _ in range(2):
        loss = nn.functional.cross_entropy(model(torch.rand(4, 3, 32, 32)), torch.arange(4) % 3)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    for name, state in frozen.items():
        assert_same_state(state, model.get_submodule(name))
    changed = model.layer4.state_dict()
    assert not all(torch.equal(v, changed[k]) for k, v in layer4.items())


def test_fit_with_everything_frozen_explains_the_fix():
    model = freeze(tiny_cnn())
    with pytest.raises(ValueError, match=r"no trainable parameters.*unfreeze\(model, 'head'\)"):
        fit(model, tiny_data(), epochs=1, progress=False)


# --- discriminative learning rates ------------------------------------------------------------

def test_param_groups_lower_rates_for_earlier_blocks():
    model = tiny_cnn()
    groups = param_groups(model, lr=0.1, decay=0.5)
    assert [g["name"] for g in groups] == BODY_BLOCKS + ["head"]
    assert [g["lr"] for g in groups] == pytest.approx([0.0125, 0.025, 0.05, 0.1])
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())  # each exactly once
    optimizer = SGD(groups, lr=0.1, momentum=0.9)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.0125, 0.025, 0.05, 0.1])


def test_param_groups_skip_frozen_blocks_and_train_each_at_its_rate():
    model = freeze_below(tiny_cnn(), 1)
    groups = param_groups(model, lr=0.1, decay=0.1)
    assert [g["name"] for g in groups] == BODY_BLOCKS[1:] + ["head"]
    # one plain-SGD step moves each block by its own rate times its gradient
    model.eval()
    before = {g["name"]: [p.detach().clone() for p in g["params"]] for g in groups}
    loss = nn.functional.cross_entropy(model(tiny_data().images[:8]), torch.arange(8) % 5)
    loss.backward()
    SGD(groups, lr=0.1).step()
    for g in groups:
        for p, old in zip(g["params"], before[g["name"]], strict=True):
            assert torch.allclose(p, old - g["lr"] * p.grad, atol=1e-7)


@pytest.mark.parametrize("kwargs, match", [({"lr": 0}, "lr=0"),
                                           ({"lr": 0.1, "decay": 0}, "decay=0"),
                                           ({"lr": 0.1, "decay": 1.5}, "decay=1.5")])
def test_param_groups_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        param_groups(tiny_cnn(), **kwargs)


def test_param_groups_of_a_frozen_model():
    with pytest.raises(ValueError, match="no trainable parameters"):
        param_groups(freeze(tiny_cnn()), 0.1)


# --- strategies -------------------------------------------------------------------------------

def test_prepare_feature_extraction_partial_full():
    pretrained = tiny_cnn(seed=1)
    for strategy, frozen in [("feature_extraction", BODY_BLOCKS), ("partial", BODY_BLOCKS[:2]),
                             ("full", [])]:
        model = prepare(copy.deepcopy(pretrained), strategy, 5, seed=0)
        assert model.head.out_features == 5
        assert [n for n, m in blocks(model) if is_frozen(m)] == frozen, strategy
        assert_same_state(state_copy(pretrained.features), model.features)  # body transferred
    model = prepare(copy.deepcopy(pretrained), "partial", 5, frozen_blocks=1)
    assert [n for n, m in blocks(model) if is_frozen(m)] == BODY_BLOCKS[:1]


def test_prepare_scratch_reinitialises_everything():
    pretrained = tiny_cnn(seed=1)
    with torch.no_grad():
        pretrained.features.conv1.norm.running_mean.fill_(0.7)
    freeze(pretrained, "features")
    model = prepare(copy.deepcopy(pretrained), "scratch", 5, seed=0)
    assert all(p.requires_grad for p in model.parameters())
    for name, module in blocks(pretrained)[:-1]:
        old_weight = next(module.parameters())
        assert not torch.equal(old_weight, next(model.get_submodule(name).parameters())), name
    assert torch.equal(model.features.conv1.norm.running_mean, torch.zeros(4))
    again = prepare(copy.deepcopy(pretrained), "scratch", 5, seed=0)
    assert_same_state(state_copy(model), again)  # seeded: the same fresh start


def test_reinitialise_leaves_global_rng_alone():
    model = tiny_cnn()
    rng = torch.get_rng_state()
    reinitialise(model, seed=2)
    assert torch.equal(rng, torch.get_rng_state())


def test_prepare_works_on_resnet(resnet):
    model = prepare(copy.deepcopy(resnet), "partial", 3)
    assert model.fc.out_features == 3
    assert [n for n, m in blocks(model) if is_frozen(m)] == body_blocks(model)[:-1]
    model = prepare(copy.deepcopy(resnet), "feature_extraction", 3)
    assert trainable_names(model) == {"fc.weight", "fc.bias"}


def test_prepare_bad_input():
    with pytest.raises(ValueError) as info:
        prepare(tiny_cnn(), "fulll", 3)
    assert str(info.value) == ("strategy='fulll' is not one of 'scratch', "
                               "'feature_extraction', 'partial', 'full'")
    assert STRATEGIES == ("scratch", "feature_extraction", "partial", "full")
    with pytest.raises(ValueError, match="num_classes=0"):
        prepare(tiny_cnn(), "full", 0)
    with pytest.raises(ValueError, match="frozen_blocks=1 only applies to strategy='partial'"):
        prepare(tiny_cnn(), "full", 3, frozen_blocks=1)
    model = tiny_cnn()
    head = model.head
    with pytest.raises(ValueError, match="frozen_blocks=7 must be a whole number from 0 to 3"):
        prepare(model, "partial", 3, frozen_blocks=7)
    assert model.head is head and model.config.num_classes == 10  # refused before any change
