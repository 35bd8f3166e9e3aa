"""ftcore.optim.SGD: the same updates as torch.optim.SGD (dampening 0), frozen and unused
parameters left alone, bad settings refused."""

from __future__ import annotations

import copy
import itertools
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ftcore.models import SmallCNN
from ftcore.optim import SGD

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
        for model, opt in ((ours, opt_ours), (theirs, opt_theirs)):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
        losses.append(loss.item())
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


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_frozen_and_unused_parameters_are_untouched(momentum, seeded):
    torch.manual_seed(0)
    used, unused, frozen = nn.Linear(4, 3), nn.Linear(4, 3), nn.Linear(4, 3)
    frozen.requires_grad_(False)
    params = [*used.parameters(), *unused.parameters(), *frozen.parameters()]
    opt = SGD(params, lr=0.1, momentum=momentum, weight_decay=0.1)
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
        assert p not in opt.state  # and no velocity was created for them
    if momentum:
        assert all("velocity" in opt.state[p] for p in used.parameters())


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
