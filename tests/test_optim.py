"""ftcore.optim: SGD, Adam and AdamW make the same updates as torch.optim's, leave frozen and
unused parameters alone, refuse bad settings; make_optimizer builds them by name."""

from __future__ import annotations

import copy
import inspect
import itertools
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ftcore.checks import ParameterError
from ftcore.models import SmallCNN
from ftcore.optim import (
    DEFAULTS,
    OPTIMIZERS,
    SGD,
    Adam,
    AdamW,
    make_optimizer,
    optimizer_settings,
)
from ftcore.surgery import optimizer_state_size

STEPS = 120
BATCH = 32

# momentum, nesterov, weight_decay: every valid combination (Nesterov needs momentum).
SETTINGS = [(m, n, wd) for m, n, wd in itertools.product((0.0, 0.9), (False, True), (0.0, 5e-3))
            if not (n and m == 0)]


@pytest.fixture(scope="module")
def batches(mnist):
    """STEPS batches of real MNIST digits, cycling through the training set."""
    x, y = mnist.train.images[:BATCH * 20], mnist.train.labels[:BATCH * 20]
    return [(x[i % 20 * BATCH:(i % 20 + 1) * BATCH], y[i % 20 * BATCH:(i % 20 + 1) * BATCH])
            for i in range(STEPS)]


def mlp() -> nn.Module:
    """A small real classifier (784 -> 32 -> 10), quick enough for every combination."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))


def tiny_cnn() -> SmallCNN:
    torch.manual_seed(0)
    return SmallCNN(num_classes=10, width=2, hidden=8, dropout=0.0)


def param_groups(model: nn.Module, grouped: bool, lr: float):
    """All parameters in one group, or the body and the last layer in two groups with
    different learning rates (the fine-tuning pattern)."""
    if not grouped:
        return list(model.parameters())
    *body, last = model.children()  # SmallCNN: features, head
    return [{"params": [p for m in body for p in m.parameters()], "lr": lr / 4},
            {"params": list(last.parameters())}]


def step_each(pairs, x, y) -> float:
    """One step of every (model, optimizer) pair on the batch (x, y); the first one's loss."""
    losses = []
    for model, opt in pairs:
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses[0]


def assert_same_trajectory(make_model, batches, grouped, **settings):
    """Train two identical models, one with each optimizer, and compare after every step."""
    lr = 0.05
    ours, theirs = make_model(), make_model()
    start = copy.deepcopy(ours.state_dict())
    opt_ours = SGD(param_groups(ours, grouped, lr), lr=lr, **settings)
    opt_theirs = torch.optim.SGD(param_groups(theirs, grouped, lr), lr=lr, dampening=0,
                                 **settings)
    losses = []
    for x, y in batches:
        losses.append(step_each(((ours, opt_ours), (theirs, opt_theirs)), x, y))
        for (name, a), b in zip(ours.named_parameters(), theirs.parameters(), strict=True):
            assert torch.allclose(a, b, rtol=0, atol=1e-6), name
    # Not a vacuous comparison: every parameter moved, and training made progress.
    for name, p in ours.named_parameters():
        assert not torch.equal(p, start[name]), name
    assert sum(losses[-10:]) < sum(losses[:10])


@pytest.mark.parametrize("grouped", [False, True], ids=["one_group", "two_groups"])
@pytest.mark.parametrize(("momentum", "nesterov", "weight_decay"), SETTINGS)
def test_sgd_matches_torch(batches, momentum, nesterov, weight_decay, grouped, seeded):
    assert_same_trajectory(mlp, batches, grouped, momentum=momentum, nesterov=nesterov,
                           weight_decay=weight_decay)


def test_sgd_matches_torch_on_small_cnn(batches, seeded):
    # 4-D convolution kernels, BatchNorm, two groups, every option on.
    assert_same_trajectory(tiny_cnn, batches[:100], grouped=True, momentum=0.9, nesterov=True,
                           weight_decay=5e-3)


def test_groups_use_their_own_learning_rate():
    a, b = nn.Parameter(torch.ones(3)), nn.Parameter(torch.ones(3))
    opt = SGD([{"params": [a], "lr": 0.1}, {"params": [b]}], lr=0.5)
    (a.sum() + b.sum()).backward()
    opt.step()
    assert torch.allclose(a, torch.full((3,), 1 - 0.1))
    assert torch.allclose(b, torch.full((3,), 1 - 0.5))


def test_step_returns_closure_loss():
    w = nn.Parameter(torch.tensor([2.0]))
    opt = SGD([w], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (w ** 2).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == 4.0
    assert w.item() == pytest.approx(2.0 - 0.25 * 4.0)  # d(w^2)/dw = 2w = 4


@pytest.mark.parametrize(("name", "settings"), [
    ("sgd", {"momentum": 0.0}), ("sgd", {"momentum": 0.9}),
    ("adam", {"amsgrad": True}), ("adamw", {"amsgrad": True})])
def test_frozen_and_unused_parameters_are_untouched(name, settings, seeded):
    used, unused, frozen = nn.Linear(4, 3), nn.Linear(4, 3), nn.Linear(4, 3)
    frozen.requires_grad_(False)
    params = [*used.parameters(), *unused.parameters(), *frozen.parameters()]
    opt = OPTIMIZERS[name](params, lr=0.1, weight_decay=0.1, **settings)
    before = {id(p): p.detach().clone() for p in params}
    x = torch.randn(5, 4)
    for _ in range(3):
        opt.zero_grad(set_to_none=True)
        (used(x).square().sum() + frozen(x).sum()).backward()
        for p in frozen.parameters():  # a stale gradient on a frozen parameter is ignored too
            p.grad = torch.ones_like(p)
        opt.step()
    for p in used.parameters():
        assert not torch.equal(p, before[id(p)])
    for p in [*unused.parameters(), *frozen.parameters()]:
        assert torch.equal(p, before[id(p)])  # bit for bit: weight decay did not touch them
        assert p not in opt.state  # and no velocity or moments were created for them
    if settings.get("momentum"):
        assert all("velocity" in opt.state[p] for p in used.parameters())
    if name != "sgd":
        assert all(opt.state[p]["step"] == 3 for p in used.parameters())


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"lr": 0.0}, "lr=0.0"),
    ({"lr": -0.1}, "lr=-0.1"),
    ({"lr": float("nan")}, "lr=nan"),
    ({"momentum": 1.0}, "momentum=1.0"),
    ({"momentum": -0.5}, "momentum=-0.5"),
    ({"weight_decay": -1e-4}, "weight_decay=-0.0001"),
    ({"nesterov": True, "momentum": 0.0}, "nesterov=True"),
])
def test_bad_hyperparameters_raise(kwargs, named):
    params = [nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match=re.escape(named)):
        SGD(params, **{"lr": 0.1, **kwargs})


def test_bad_hyperparameter_in_a_group_raises():
    groups = [{"params": [nn.Parameter(torch.zeros(2))], "lr": -1.0}]
    with pytest.raises(ValueError, match=re.escape("lr=-1.0")):
        SGD(groups, lr=0.1)


def test_bad_group_added_later_raises_and_is_not_added():
    opt = SGD([nn.Parameter(torch.zeros(2))], lr=0.1, momentum=0.9)
    unfrozen = nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match=re.escape("momentum=1.5")):
        opt.add_param_group({"params": [unfrozen], "momentum": 1.5})
    assert len(opt.param_groups) == 1
    opt.add_param_group({"params": [unfrozen], "lr": 0.01})  # gradual unfreezing
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]
    assert opt.param_groups[1]["momentum"] == 0.9  # the defaults fill in the rest


# ---------------------------------------------------------------- Adam and AdamW

ADAMS = {"adam": (Adam, torch.optim.Adam), "adamw": (AdamW, torch.optim.AdamW)}


class AdamNet(nn.Module):
    """A small real classifier (784 -> 32 -> 10) with a frozen parameter in its forward pass
    (the first layer's bias) and a layer no loss uses (its parameters never get a gradient)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU())
        self.head = nn.Linear(32, 10)
        self.unused = nn.Linear(3, 3)
        self.body[1].bias.requires_grad_(False)

    def forward(self, x):
        return self.head(self.body(x))

    def untouchable(self) -> list[nn.Parameter]:
        return [self.body[1].bias, *self.unused.parameters()]


def adam_groups(model: AdamNet, grouped: bool, lr: float, weight_decay: float, amsgrad: bool):
    """Every parameter (frozen and unused ones too) in one group, or two groups that differ in
    every setting: lr, betas, eps, weight decay (when there is any) and amsgrad."""
    if not grouped:
        return list(model.parameters())
    return [{"params": [*model.body.parameters(), *model.unused.parameters()], "lr": lr / 3,
             "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 3 * weight_decay,
             "amsgrad": not amsgrad},
            {"params": list(model.head.parameters())}]


def adam_pair(name, *, grouped=False, lr=3e-3, weight_decay=0.0, amsgrad=False):
    """Two identical AdamNets, one with our optimizer, one with torch's single-tensor code
    (foreach=False): [(ours, our optimizer), (theirs, torch's)]."""
    ours_cls, torch_cls = ADAMS[name]
    ours, theirs = AdamNet(), AdamNet()
    return [(ours, ours_cls(adam_groups(ours, grouped, lr, weight_decay, amsgrad), lr=lr,
                            weight_decay=weight_decay, amsgrad=amsgrad)),
            (theirs, torch_cls(adam_groups(theirs, grouped, lr, weight_decay, amsgrad), lr=lr,
                               weight_decay=weight_decay, amsgrad=amsgrad, foreach=False))]


@pytest.mark.parametrize("grouped", [False, True], ids=["one_group", "two_groups"])
@pytest.mark.parametrize("amsgrad", [False, True], ids=["adam", "amsgrad"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.05], ids=["no_decay", "decay"])
@pytest.mark.parametrize("name", ADAMS)
def test_adam_matches_torch(batches, name, weight_decay, amsgrad, grouped):
    pairs = adam_pair(name, grouped=grouped, weight_decay=weight_decay, amsgrad=amsgrad)
    (ours, opt), (theirs, _) = pairs
    start = copy.deepcopy(ours.state_dict())
    losses = []
    for x, y in batches:
        losses.append(step_each(pairs, x, y))
        for (key, a), b in zip(ours.named_parameters(), theirs.parameters(), strict=True):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6, msg=key)
    assert len(losses) >= 100
    frozen_and_unused = {id(p) for p in ours.untouchable()}
    amsgrad_of = {id(p): group["amsgrad"] for group in opt.param_groups for p in group["params"]}
    for key, p in ours.named_parameters():
        if id(p) in frozen_and_unused:
            assert torch.equal(p, start[key]), key  # bit for bit: not even decayed
            assert p not in opt.state, key           # and given no moments
        else:  # not a vacuous comparison: every trained parameter moved
            assert not torch.equal(p, start[key]), key
            moments = {"m", "v", "v_max"} if amsgrad_of[id(p)] else {"m", "v"}
            assert set(opt.state[p]) == {"step"} | moments, key
            assert opt.state[p]["step"] == len(losses)
    assert sum(losses[-10:]) < sum(losses[:10]) / 2  # and it learned


def test_adam_matches_torch_on_small_cnn(batches):
    """4-D convolution kernels and BatchNorm, two groups, AdamW with amsgrad."""
    lr = 2e-3
    ours, theirs = tiny_cnn(), tiny_cnn()

    def groups(model):
        return [{"params": model.features.parameters(), "lr": lr / 4, "weight_decay": 0.1},
                {"params": model.head.parameters()}]

    opt_ours = AdamW(groups(ours), lr=lr, amsgrad=True)
    opt_theirs = torch.optim.AdamW(groups(theirs), lr=lr, amsgrad=True, foreach=False)
    for x, y in batches[:100]:
        step_each(((ours, opt_ours), (theirs, opt_theirs)), x, y)
        for (key, a), b in zip(ours.named_parameters(), theirs.parameters(), strict=True):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6, msg=key)
    for a, b in zip(ours.buffers(), theirs.buffers(), strict=True):  # BatchNorm statistics
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def test_adam_weight_decay_is_coupled_and_adamw_decoupled(batches):
    """The same decay, two different optimizers: Adam's L2 term is divided by sqrt(v_hat)
    with the gradient, AdamW's shrinks every weight by lr * weight_decay. (Each matches its
    torch counterpart: test_adam_matches_torch.)"""
    adam, adamw = adam_pair("adam", weight_decay=0.1)[0], adam_pair("adamw", weight_decay=0.1)[0]
    for x, y in batches[:100]:
        step_each((adam, adamw), x, y)
    gap = max((a - b).abs().max().item()
              for a, b in zip(adam[0].parameters(), adamw[0].parameters(), strict=True))
    assert gap > 1e-3  # Adam's steps are about lr = 3e-3 per number: far from rounding


def test_zero_gradient_shows_coupled_against_decoupled_decay():
    """With a zero loss gradient only the decay acts. Adam normalises its L2 gradient,
    wd * p, by its own size, so the first step moves each weight by lr whatever wd is; AdamW
    shrinks each weight by the factor (1 - lr * wd)."""
    lr, wd, start = 0.1, 0.01, torch.tensor([2.0, -3.0, 0.5])
    moved = {}
    for name, cls in (("adam", Adam), ("adamw", AdamW)):
        p = nn.Parameter(start.clone())
        opt = cls([p], lr=lr, weight_decay=wd)
        p.grad = torch.zeros_like(p)
        opt.step()
        moved[name] = p.detach()
    torch.testing.assert_close(moved["adam"], start - lr * start.sign(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(moved["adamw"], start * (1 - lr * wd), rtol=1e-6, atol=0.0)


@pytest.mark.parametrize("name", ADAMS)
def test_first_step_is_bias_corrected(name):
    """After one step m_hat = g and v_hat = g^2: every number moves by lr * g / (|g| + eps),
    about lr, whatever the gradient's scale (uncorrected, it would be sqrt(1 - beta2) /
    (1 - beta1) = 0.32 lr times as far, before eps)."""
    g = torch.tensor([1e-3, -2.0, 50.0, 1e-7])
    p = nn.Parameter(torch.ones(4))
    opt = OPTIMIZERS[name]([p], lr=0.01, weight_decay=0.0, eps=1e-8)
    p.grad = g.clone()
    opt.step()
    torch.testing.assert_close(p.detach(), 1 - 0.01 * g / (g.abs() + 1e-8), rtol=1e-6,
                               atol=1e-7)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_optimizer_state_size_counts_adams_moments_and_step(amsgrad, seeded):
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2))
    model[0].requires_grad_(False)
    trained = [p for p in model.parameters() if p.requires_grad]
    opt = Adam(model.parameters(), amsgrad=amsgrad)
    assert optimizer_state_size(opt) == 0  # nothing before the first step
    model(torch.randn(3, 6)).sum().backward()
    opt.step()
    numbers = sum(p.numel() for p in trained)
    moments = 3 if amsgrad else 2  # m, v (and v_max)
    assert optimizer_state_size(opt) == moments * numbers + len(trained)  # + a step count each
    reference = torch.optim.Adam(model.parameters(), amsgrad=amsgrad)
    model(torch.randn(3, 6)).sum().backward()
    reference.step()
    assert optimizer_state_size(reference) == optimizer_state_size(opt)


def test_adam_defaults_are_torchs():
    for ours, theirs in ADAMS.values():
        mine = inspect.signature(ours).parameters
        for key, value in inspect.signature(theirs).parameters.items():
            if key in mine:
                assert mine[key].default == value.default, (ours.__name__, key)
    assert Adam([nn.Parameter(torch.zeros(1))]).defaults["weight_decay"] == 0.0
    assert AdamW([nn.Parameter(torch.zeros(1))]).defaults["weight_decay"] == 1e-2


@pytest.mark.parametrize("name", ADAMS)
@pytest.mark.parametrize(("kwargs", "named"), [
    ({"lr": 0.0}, "lr=0.0"),
    ({"lr": -1e-3}, "lr=-0.001"),
    ({"lr": "0.001"}, "lr='0.001'"),
    ({"lr": True}, "lr=True"),
    ({"lr": float("nan")}, "lr=nan"),
    ({"betas": 0.9}, "betas=0.9 must be a pair"),
    ({"betas": (0.9,)}, "betas=(0.9,) must be a pair"),
    ({"betas": (0.9, 0.99, 0.999)}, "betas=(0.9, 0.99, 0.999) must be a pair"),
    ({"betas": (0.9, 1.0)}, "betas=(0.9, 1.0): beta2=1.0 must be in [0, 1)"),
    ({"betas": (-0.1, 0.999)}, "betas=(-0.1, 0.999): beta1=-0.1 must be in [0, 1)"),
    ({"betas": ("0.9", 0.999)}, "beta1='0.9'"),
    ({"eps": 0.0}, "eps=0.0"),
    ({"eps": -1e-8}, "eps=-1e-08"),
    ({"weight_decay": -0.01}, "weight_decay=-0.01"),
    ({"amsgrad": "yes"}, "amsgrad='yes' must be True or False"),
    ({"amsgrad": 1}, "amsgrad=1 must be True or False"),
])
def test_adam_bad_hyperparameters_raise(name, kwargs, named):
    params = [nn.Parameter(torch.zeros(2))]
    with pytest.raises(ParameterError, match=re.escape(named)):
        OPTIMIZERS[name](params, **kwargs)


@pytest.mark.parametrize("name", ADAMS)
def test_adam_without_parameters_raises_like_sgd(name):
    model = nn.Linear(2, 2)
    params = model.parameters()
    list(params)  # the generator is spent
    cls = OPTIMIZERS[name]
    with pytest.raises(ParameterError, match=f"^{cls.__name__} got no parameters.*call it again"):
        cls(params)


def test_adam_bad_group_is_refused_and_not_added():
    with pytest.raises(ParameterError, match=re.escape("betas=(0.9, 1.5): beta2=1.5")):
        Adam([{"params": [nn.Parameter(torch.zeros(2))], "betas": (0.9, 1.5)}])
    opt = AdamW([nn.Parameter(torch.zeros(2))], lr=1e-3)
    with pytest.raises(ParameterError, match=re.escape("eps=0")):
        opt.add_param_group({"params": [nn.Parameter(torch.zeros(2))], "eps": 0})
    assert len(opt.param_groups) == 1
    opt.add_param_group({"params": [nn.Parameter(torch.zeros(2))], "lr": 1e-4})
    assert opt.param_groups[1]["lr"] == 1e-4
    assert opt.param_groups[1]["weight_decay"] == 1e-2  # the defaults fill in the rest


# ---------------------------------------------------------------- by name

@pytest.mark.parametrize("name", OPTIMIZERS)
def test_make_optimizer_builds_each_by_name_with_its_defaults(name):
    params = [nn.Parameter(torch.zeros(2))]
    opt = make_optimizer(name, params)
    assert type(opt) is OPTIMIZERS[name]
    group = opt.param_groups[0]
    assert {k: group[k] for k in DEFAULTS[name]} == DEFAULTS[name]
    opt = make_optimizer(name, params, lr=0.02, weight_decay=0.3)
    assert (opt.param_groups[0]["lr"], opt.param_groups[0]["weight_decay"]) == (0.02, 0.3)


def test_defaults_are_the_lessons_sgd_and_torchs_adam():
    assert DEFAULTS["sgd"] == {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.0,
                               "nesterov": False}
    for name in ("adam", "adamw"):
        own = inspect.signature(OPTIMIZERS[name]).parameters
        assert DEFAULTS[name] == {k: own[k].default for k in DEFAULTS[name]}


def test_make_optimizer_refuses_unknown_names_listing_the_known_ones():
    with pytest.raises(ParameterError,
                       match=re.escape("optimizer='adan' is not one of 'sgd', 'adam', 'adamw'")):
        make_optimizer("adan", [nn.Parameter(torch.zeros(2))])


@pytest.mark.parametrize(("name", "kwargs", "named"), [
    ("adam", {"momentum": 0.9}, "momentum=0.9 is a setting of optimizer='sgd'"),
    ("adamw", {"nesterov": True}, "nesterov=True is a setting of optimizer='sgd'"),
    ("adam", {"lr": -1.0}, "lr=-1.0"),
    ("adamw", {"weight_decay": -0.1}, "weight_decay=-0.1"),
    ("sgd", {"momentum": 1.0}, "momentum=1.0"),
    ("sgd", {"nesterov": True, "momentum": 0.0}, "nesterov=True needs momentum > 0"),
])
def test_optimizer_settings_refuse_before_building(name, kwargs, named):
    with pytest.raises(ParameterError, match=re.escape(named)):
        optimizer_settings(name, **kwargs)
    with pytest.raises(ParameterError, match=re.escape(named)):
        make_optimizer(name, [nn.Parameter(torch.zeros(2))], **kwargs)
