"""Lesson 04's exercise checks: a correct answer written another way passes, and each typical
mistake fails with a message that points at it (without the answer)."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import fails, passes
from torch import nn

# --- 04.1 a new head for k classes -------------------------------------------------------------

def test_new_head_sized_from_the_old_weight_passes():
    def new_head(model, num_classes):
        model.add_module("head", nn.Linear(model.head.weight.shape[1], num_classes))
        return model

    passes("04.1", new_head)


def _head_for_128_features(model, num_classes):  # SmallCNN's default, hard-coded
    model.head = nn.Linear(128, num_classes)
    return model


def _only_out_features(model, num_classes):
    model.head.out_features = num_classes
    return model


def _on_a_copy(model, num_classes):
    model = copy.deepcopy(model)
    model.head = nn.Linear(model.head.in_features, num_classes)
    return model


def _old_rows_kept(model, num_classes):
    old = model.head
    model.head = nn.Linear(old.in_features, num_classes)
    with torch.no_grad():
        model.head.weight.copy_(old.weight[:num_classes])
        model.head.bias.copy_(old.bias[:num_classes])
    return model


def _everything_reset(model, num_classes):
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    model.head = nn.Linear(model.head.in_features, num_classes)
    return model


@pytest.mark.parametrize("answer, fragment", [
    (_head_for_128_features, "read the size from the old head"),
    (_only_out_features, "still the old layer"),
    (_on_a_copy, "in place"),
    (_old_rows_kept, "starts from the old head's weights"),
    (_everything_reset, "body's weights changed"),
], ids=lambda value: value.__name__.strip("_") if callable(value) else "")
def test_new_head_mistakes_are_named(answer, fragment):
    fails("04.1", answer, fragment)


# --- 04.2 freeze the body for feature extraction -----------------------------------------------

def test_feature_extraction_returning_a_filter_passes():
    def feature_extraction(model):
        model.requires_grad_(False)
        model.head.requires_grad_(True)
        return filter(lambda p: p.requires_grad, model.parameters())

    passes("04.2", feature_extraction)


def _freeze_all(model):
    model.requires_grad_(False)
    return list(model.head.parameters())


def _freeze_body_only(model):  # right if the head arrives trainable; it may not
    model.features.requires_grad_(False)
    return list(model.head.parameters())


def _eval_instead(model):
    model.features.eval()
    model.head.requires_grad_(True)
    return list(model.head.parameters())


def _returns_everything(model):
    model.requires_grad_(False)
    model.head.requires_grad_(True)
    return list(model.parameters())


def _returns_copies(model):
    model.requires_grad_(False)
    model.head.requires_grad_(True)
    return [p.detach().clone() for p in model.head.parameters()]


@pytest.mark.parametrize("answer, fragment", [
    (_freeze_all, "head parameter 'head.weight' is frozen"),
    (_freeze_body_only, "even if it arrived frozen"),
    (_eval_instead, "still trainable"),
    (_returns_everything, "frozen body parameters too"),
    (_returns_copies, "not the model's parameters"),
], ids=lambda value: value.__name__.strip("_") if callable(value) else "")
def test_feature_extraction_mistakes_are_named(answer, fragment):
    fails("04.2", answer, fragment)


# --- 04.3 how far each layer moved -------------------------------------------------------------

def test_layer_change_by_zipping_the_parameters_passes():
    def layer_change(before, after):
        return {name: float(torch.linalg.vector_norm(new.detach() - old.detach())
                            / torch.linalg.vector_norm(old.detach()))
                for (name, new), old in zip(after.named_parameters(), before.parameters(),
                                            strict=True)}

    passes("04.3", layer_change)


def _change(before, after, measure, items=lambda model: model.named_parameters()):
    old = before.state_dict()
    with torch.no_grad():
        return {name: float(measure(w.float(), old[name].float())) for name, w in items(after)}


@pytest.mark.parametrize("mistake, answer, fragment", [
    ("divides by the new weights' norm",
     lambda b, a: _change(b, a, lambda w, w0: (w - w0).norm() / w.norm()), "divided by the size"),
    ("no division", lambda b, a: _change(b, a, lambda w, w0: (w - w0).norm()), "divided by"),
    ("mean elementwise ratio",
     lambda b, a: _change(b, a, lambda w, w0: ((w - w0).abs() / w0.abs()).mean()),
     "whole difference"),
    ("BatchNorm buffers too",
     lambda b, a: _change(b, a, lambda w, w0: (w - w0).norm() / w0.norm().clamp_min(1e-12),
                          items=lambda model: model.state_dict().items()),
     "not parameters"),
    ("changes the model it measures",
     lambda b, a: b.load_state_dict(a.state_dict()) or _change(
         b, a, lambda w, w0: (w - w0).norm()), "changed a model's weights"),
])
def test_layer_change_mistakes_are_named(mistake, answer, fragment):
    fails("04.3", answer, fragment)
