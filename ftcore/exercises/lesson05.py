"""Checks for lesson 05's exercises: freezing the first k blocks, discriminative learning rates,
and frozen BatchNorm in training mode.

Each check builds tiny models of two architectures (a ``SmallCNN`` and an ``MLP``, whose blocks
have different names and counts), so an answer that hard-codes SmallCNN's layer names fails.
"""

from __future__ import annotations

import copy
import math
from random import Random

import torch
from torch import nn

from ..models import MLP, SmallCNN
from ..surgery import blocks, body_blocks, freeze, unfreeze
from .checks import Exercise, expect

_RANDOM = Random(0)  # the checks' inputs; each check reseeds it, so a verdict never depends on luck


def _tiny_models() -> list[tuple[str, nn.Module]]:
    """A SmallCNN and an MLP of random small sizes (the global random state is left alone)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_RANDOM.randrange(2**31))
        return [("a SmallCNN", SmallCNN(_RANDOM.choice((3, 5, 10)), width=2, hidden=8)),
                ("an MLP with 4 hidden layers", MLP(3, hidden=(8, 6, 6, 4)))]


def _trainable(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())


# --- 05.1 -------------------------------------------------------------------------------------

def _check_freeze_first(freeze_first) -> None:
    _RANDOM.seed(41)
    for label, model in _tiny_models():
        body, fresh = body_blocks(model), copy.deepcopy(model)
        for k in range(len(body) + 1):
            model = copy.deepcopy(fresh)
            freeze_first(model, k)
            call = f"on {label}, after freeze_first(model, {k})"
            for i, name in enumerate(body):
                module = model.get_submodule(name)
                expect(i >= k or not _trainable(module),
                       f"{call} the body block '{name}' (number {i + 1} from the input) still "
                       "has trainable parameters: every parameter of the first k body blocks "
                       "must have requires_grad=False")
                expect(i < k or all(p.requires_grad for p in module.parameters()),
                       f"{call} the body block '{name}' (number {i + 1} from the input) is "
                       "frozen, but only the first k should be: count the blocks from the input "
                       "side, starting at the first one")
            expect(all(p.requires_grad for p in model.head.parameters()),
                   f"{call} the head is frozen: it is not a body block and must always train")
        freeze_first(model, 1)  # model has every body block frozen: lower k to unfreeze again
        expect(all(_trainable(model.get_submodule(name)) for name in body[1:]),
               f"on {label}, freeze_first(model, {len(body)}) then freeze_first(model, 1) left "
               "a block after the first one frozen: each call must make everything after the "
               "first k blocks trainable, whatever an earlier call froze")


# --- 05.2 -------------------------------------------------------------------------------------

def _rates(groups, model: nn.Module) -> dict[int, float]:
    """id(parameter) -> learning rate, checking the groups' form on the way."""
    expect(isinstance(groups, (list, tuple)) and groups and all(
        isinstance(g, dict) and "params" in g for g in groups),
        "return a list of dicts, each with the keys 'params' (a list of parameters) and 'lr'")
    rates: dict[int, float] = {}
    names = {id(p): name for name, p in model.named_parameters()}
    for group in groups:
        expect("lr" in group, "every group needs its own 'lr'")
        params = group["params"]
        params = [params] if isinstance(params, torch.Tensor) else list(params)
        for p in params:
            expect(id(p) in names, "a group holds a tensor that is not a parameter of the model")
            expect(id(p) not in rates, f"the parameter '{names[id(p)]}' is in two groups: put "
                                       "each parameter in exactly one")
            expect(p.requires_grad, f"the frozen parameter '{names[id(p)]}' is in a group: "
                                    "leave out parameters with requires_grad=False")
            rates[id(p)] = float(group["lr"])
    return rates


def _check_rates(groups, model: nn.Module, lr: float, decay: float, label: str) -> None:
    rates = _rates(groups, model)
    named = blocks(model)
    for name, module in named:
        for p in module.parameters():
            expect(not p.requires_grad or id(p) in rates,
                   f"on {label}, a trainable parameter of the block '{name}' is in no group: "
                   "every trainable parameter must be trained")
    block_rate = {}
    for name, module in named:
        found = {rates[id(p)] for p in module.parameters() if id(p) in rates}
        expect(len(found) <= 1, f"on {label}, the parameters of the block '{name}' got "
                                "different rates: one rate per block")
        block_rate[name] = found.pop() if found else None
    for i, (name, _) in reversed(list(enumerate(named))):  # from the head down
        if block_rate[name] is None:
            continue
        if i == len(named) - 1:
            expect(math.isclose(block_rate[name], lr, rel_tol=1e-6),
                   f"on {label}, the head (the last block) does not get lr itself")
        else:
            expect(math.isclose(block_rate[name] / lr, decay ** (len(named) - 1 - i),
                                rel_tol=1e-6),
                   f"on {label}, the block '{name}' does not get decay times the rate of the "
                   f"block after it ('{named[i + 1][0]}'): the exponent of decay is the number "
                   "of blocks from this one to the head, counting every block of the model "
                   "(frozen ones too)")


def _check_groups(discriminative_groups) -> None:
    _RANDOM.seed(42)
    for label, model in _tiny_models():
        lr, decay = _RANDOM.uniform(0.01, 0.2), _RANDOM.uniform(0.2, 0.8)
        groups = discriminative_groups(model, lr, decay)
        _check_rates(groups, model, lr, decay, label)
        for frozen in body_blocks(model)[:2]:  # a frozen block keeps its place in the count
            freeze(model, frozen)
            groups = discriminative_groups(model, lr, decay)
            _check_rates(groups, model, lr, decay, f"{label} with '{frozen}' frozen")
            unfreeze(model)


# --- 05.3 -------------------------------------------------------------------------------------

class _TwoNorms(nn.Module):
    """Linear -> BatchNorm1d -> ReLU -> Linear -> BatchNorm1d -> Linear, on (N, 6) inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(),
                                    nn.Linear(8, 8), nn.BatchNorm1d(8), nn.Dropout(0.5),
                                    nn.Linear(8, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def _cases():
    """(description, model, input batch, frozen norms, trainable norms, dropout layers)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_RANDOM.randrange(2**31))
        cnn = SmallCNN(3, width=2, hidden=8)
        freeze(cnn, "features.conv1")
        mlp = _TwoNorms()
        freeze(mlp, "layers.1")  # the first BatchNorm1d alone; its Linear trains
        return [
            ("a SmallCNN with features.conv1 frozen", cnn, torch.rand(16, 1, 28, 28),
             [cnn.features.conv1.norm], [cnn.features.conv2.norm], [cnn.features.fc.dropout]),
            ("a network whose first BatchNorm1d is frozen", mlp, torch.randn(16, 6) * 3 + 1,
             [mlp.layers[1]], [mlp.layers[4]], [mlp.layers[5]]),
        ]


def _check_train_mode(train_mode) -> None:
    _RANDOM.seed(43)
    for label, model, x, frozen, trainable, dropouts in _cases():
        model.eval()
        train_mode(model)
        expect(model.training, f"on {label}, the model is still in evaluation mode: the rest of "
                               "the model must train")
        expect(all(d.training for d in dropouts),
               f"on {label}, dropout is in evaluation mode: only frozen BatchNorm layers stay "
               "in evaluation mode")
        norms = frozen + trainable
        before = [norm.running_mean.clone() for norm in norms]
        with torch.no_grad():
            model(x)
        moved = [not torch.equal(mean, norm.running_mean)
                 for mean, norm in zip(before, norms, strict=True)]
        expect(not any(moved[:len(frozen)]),
               f"on {label}, a BatchNorm layer with frozen parameters updated its running "
               "statistics during a forward pass: a BatchNorm in training mode always does")
        expect(all(moved[len(frozen):]),
               f"on {label}, a BatchNorm layer whose parameters are trainable did not update its "
               "statistics: only the frozen ones stay in evaluation mode")


EXERCISES: list[Exercise] = [
    Exercise("05.1", "Freeze the first k body blocks",
             hint="count the body's blocks from the input (ftcore.surgery.body_blocks lists them "
                  "in order); a second call with a smaller k must make the later blocks trainable"
                  " again",
             test=_check_freeze_first),
    Exercise("05.2", "Discriminative learning rates",
             hint="the head learns at lr and each block nearer the input learns `decay` times "
                  "slower than the next one; frozen parameters belong in no group",
             test=_check_groups),
    Exercise("05.3", "Keep frozen BatchNorm in evaluation mode",
             hint="model.train() switches every module; which modules keep running statistics, "
                  "and which of those must not change?",
             test=_check_train_mode),
]
