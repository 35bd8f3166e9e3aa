"""Checks for lesson 04's exercises: a new head, a frozen body, and how far each layer moved.

Each check uses tiny models of two architectures (a ``SmallCNN`` and an ``MLP``, with different
feature sizes), built from fixed seeds without touching the global random state, so an answer
that hard-codes SmallCNN's sizes or layer names fails.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..models import MLP, SmallCNN
from ..transfer import relative_change
from .checks import Exercise, expect


def _tiny_models() -> list[tuple[str, nn.Module]]:
    """(description, model): a SmallCNN with 12 features and an MLP with 20, 10 classes each."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return [("a SmallCNN", SmallCNN(10, width=2, hidden=12)), ("an MLP", MLP(10, hidden=(20,)))]


def _images(n: int = 6) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def _body_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in model.state_dict().items()
            if not name.startswith("head.")}


# --- 04.1 a new head for k classes -------------------------------------------------------------

def _check_new_head(new_head) -> None:
    for (label, model), k in zip(_tiny_models(), (3, 7), strict=True):
        old, body = model.head, _body_state(model)
        result = new_head(model, k)
        expect(result is model, "change the model you were given (in place) and return it")
        expect(isinstance(model.head, nn.Linear), f"on {label}, model.head should be an "
                                                  f"nn.Linear, not {type(model.head).__name__}")
        expect(model.head is not old, f"on {label}, model.head is still the old layer: put a "
                                      f"new one in its place (changing out_features alone does "
                                      f"not change the weights)")
        expect(model.head.in_features == old.in_features,
               f"on {label}, the new head takes {model.head.in_features} inputs but the body "
               f"hands it {old.in_features} features: read the size from the old head")
        expect(model.head.out_features == k,
               f"on {label}, the new head has {model.head.out_features} outputs for {k} classes")
        after = _body_state(model)
        expect(after.keys() == body.keys() and all(torch.equal(body[n], after[n]) for n in body),
               f"on {label}, the body's weights changed: only the head should be new")
        expect(all(p.requires_grad for p in model.head.parameters()),
               f"on {label}, the new head is frozen: it is the part that must learn")
        rows = min(k, old.out_features)
        expect(not torch.equal(model.head.weight[:rows].detach(), old.weight[:rows].detach()),
               f"on {label}, the new head starts from the old head's weights: the old classes "
               f"mean nothing for the new task, so start from a freshly initialised layer")
        with torch.no_grad():
            shape = tuple(model.eval()(_images()).shape)
        expect(shape == (6, k), f"on {label}, 6 images give logits of shape {shape}")


# --- 04.2 freeze the body for feature extraction -----------------------------------------------

def _check_feature_extraction(feature_extraction) -> None:
    for label, model in _tiny_models():
        model.head.requires_grad_(False)  # the state a model may arrive in: frozen head
        model.get_submodule("features").requires_grad_(True)
        names = {id(p): name for name, p in model.named_parameters()}
        result = feature_extraction(model)
        expect(result is not None, "return the parameters the optimizer should train")
        params = [result] if isinstance(result, torch.Tensor) else list(result)
        for name, p in model.named_parameters():
            if name.startswith("head."):
                expect(p.requires_grad, f"on {label}, the head parameter '{name}' is frozen: "
                                        f"the head must train (even if it arrived frozen)")
            else:
                expect(not p.requires_grad,
                       f"on {label}, the body parameter '{name}' is still trainable: every body "
                       f"parameter must have requires_grad=False (eval() and no_grad() freeze "
                       f"nothing)")
        expect(all(id(p) in names for p in params),
               f"on {label}, you return tensors that are not the model's parameters (copies, or "
               f".data?): the optimizer must hold the parameters themselves")
        returned = {names[id(p)] for p in params}
        head = {name for name in names.values() if name.startswith("head.")}
        extra = sorted(returned - head)
        expect(not extra, f"on {label}, you return frozen body parameters too "
                          f"({', '.join(extra[:2])}, ...): give the optimizer only what trains")
        expect(returned == head, f"on {label}, the head parameters "
                                 f"{', '.join(sorted(head - returned))} are missing")


# --- 04.3 how far each layer moved -------------------------------------------------------------

def _moved(model: nn.Module, seed: int, scale: float, still: int = 0) -> nn.Module:
    """A copy of ``model`` with its parameters moved by different amounts (every ``still``-th
    one not at all) and its BatchNorm statistics changed too (buffers, not parameters)."""
    moved = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for i, p in enumerate(moved.parameters()):
            if not still or i % still:
                p.add_(torch.randn(p.shape, generator=g) * scale * (i + 1))
        for buffer in moved.buffers():
            if buffer.is_floating_point():
                buffer.add_(1.0)
    return moved


def _check_relative_change(relative_change_answer) -> None:
    for seed, (label, model) in enumerate(_tiny_models()):
        before = _moved(model, seed, scale=0.1)  # no parameter is all zeros (BatchNorm's biases)
        after = _moved(before, seed + 10, scale=0.02, still=3)
        kept = [copy.deepcopy(m.state_dict()) for m in (before, after)]
        result = relative_change_answer(before, after)
        expect(all(torch.equal(state[n], v) for state, m in zip(kept, (before, after), strict=True)
                   for n, v in m.state_dict().items()),
               "your function changed a model's weights: only measure them")
        expect(isinstance(result, dict), f"return a dict {{parameter name: float}}, not a "
                                         f"{type(result).__name__}")
        expected = relative_change(before, after)
        extra = sorted(set(result) - set(expected))
        expect(not extra, f"on {label}, your dict has entries that are not parameters "
                          f"({', '.join(map(str, extra[:3]))}): measure model.named_parameters() "
                          f"only (BatchNorm's running statistics are buffers)")
        missing = sorted(set(expected) - set(result))
        expect(not missing, f"on {label}, your dict misses parameters "
                            f"({', '.join(missing[:3])}): one entry per named parameter")
        for name, value in expected.items():
            got = result[name]
            got = float(got.item() if isinstance(got, torch.Tensor) else got)
            expect(abs(got - value) <= 1e-5 * max(value, 1e-3),
                   f"on {label}, the change of '{name}' is not right: it is the size (norm) of "
                   f"the whole difference w - w0, divided by the size of w0, the weights before")


EXERCISES: list[Exercise] = [
    Exercise(
        id="04.1",
        title="A new head for k classes",
        hint="the new head must accept what the body produces (where can you read how many "
             "features that is?) and must be a fresh layer",
        test=_check_new_head,
    ),
    Exercise(
        id="04.2",
        title="Freeze the body for feature extraction",
        hint="feature extraction trains the head alone: which parameters need gradients, and "
             "which should the optimizer get? Do not assume the head arrives trainable",
        test=_check_feature_extraction,
    ),
    Exercise(
        id="04.3",
        title="How far did each layer move?",
        hint="relative change is the norm of (after - before) divided by the norm of before, for "
             "each parameter (buffers are not parameters)",
        test=_check_relative_change,
    ),
]
