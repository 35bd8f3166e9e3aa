"""Lesson 05's exercise checks: plausible wrong answers fail with a message that says what is wrong;
correct answers written differently from the notebook's solutions pass."""

from __future__ import annotations

import pytest
from helpers import fails, passes
from torch import nn

from ftcore.surgery import blocks, body_blocks

SMALLCNN_BLOCKS = ["features.conv1", "features.conv2", "features.fc"]


# --- 04.1: freeze the first k body blocks -----------------------------------------------------

def _set_frozen(model, names):
    prefixes = tuple(f"{name}." for name in names)
    for name, parameter in model.named_parameters():
        parameter.requires_grad = not name.startswith(prefixes)


def test_04_1_passes_by_parameter_names():
    passes("05.1", lambda model, k: _set_frozen(model, body_blocks(model)[:k]))


@pytest.mark.parametrize("wrong, fragment", [
    (lambda model, k: _set_frozen(model, body_blocks(model)[len(body_blocks(model)) - k:]),
     "still has trainable parameters"),                        # counted from the output
    (lambda model, k: _set_frozen(model, body_blocks(model)[:k + 1]),
     r"is frozen, but only the first k should be"),            # off by one
    (lambda model, k: _set_frozen(model, [*body_blocks(model)[:k], "head"]),
     "the head is frozen"),                                    # froze all, unfroze the body
])
def test_04_1_wrong_blocks_are_named(wrong, fragment):
    fails("05.1", wrong, fragment)


def test_04_1_an_answer_that_never_unfreezes_is_caught():
    def freeze_only(model, k):
        for name in body_blocks(model)[:k]:
            for parameter in model.get_submodule(name).parameters():
                parameter.requires_grad_(False)

    fails("05.1", freeze_only, "whatever an earlier call froze")


def test_04_1_smallcnn_names_hard_coded_fail_on_the_mlp():
    fails("05.1", lambda model, k: _set_frozen(model, SMALLCNN_BLOCKS[:k]),
           "MLP.*still has trainable parameters")


# --- 04.2: discriminative learning rates ------------------------------------------------------

def _groups_by_parameter(model, lr, decay):
    """One group per trainable parameter (a different shape of a correct answer)."""
    named = blocks(model)
    return [{"params": [p], "lr": lr * decay ** (len(named) - 1 - i)}
            for i, (_, block) in enumerate(named) for p in block.parameters() if p.requires_grad]


def _groups(model, lr, rate, trainable_only=True, use=blocks):
    named = use(model)
    return [{"params": [p for p in block.parameters() if p.requires_grad or not trainable_only],
             "lr": rate(lr, i, len(named))} for i, (_, block) in enumerate(named)]


def test_04_2_passes_with_one_group_per_parameter():
    passes("05.2", _groups_by_parameter)


@pytest.mark.parametrize("wrong, fragment", [
    (lambda m, lr, d: _groups(m, lr, lambda lr, i, b: lr * d ** i),
     r"the head \(the last block\) does not get lr"),                      # exponent reversed
    (lambda m, lr, d: _groups(m, lr, lambda lr, i, b: lr * d * (b - 1 - i) or lr),
     "does not get decay times the rate"),                                 # linear, not powers
    (lambda m, lr, d: _groups(m, lr, lambda lr, i, b: lr * d ** (b - 1 - i), trainable_only=False),
     "frozen parameter .* is in a group"),                                 # frozen ones included
    (lambda m, lr, d: _groups(m, lr, lambda lr, i, b: lr * d ** (b - i),
                              use=lambda model: [(n, model.get_submodule(n))
                                                 for n in body_blocks(model)]),
     "block 'head' is in no group"),                                       # the head forgotten
    (lambda m, lr, d: [{"params": list(m.parameters()), "lr": lr}],
     "does not get decay times the rate"),                                 # one rate for all
])
def test_04_2_wrong_rates_are_named(wrong, fragment):
    fails("05.2", wrong, fragment)


def test_04_2_a_parameter_in_two_groups_is_named():
    def twice(model, lr, decay):
        return _groups_by_parameter(model, lr, decay) + [{"params": [model.head.bias], "lr": lr}]

    fails("05.2", twice, "head.bias' is in two groups")


# --- 04.3: frozen BatchNorm stays in evaluation mode ------------------------------------------

def _train_mode_by_modules(model):
    for module in model.modules():
        frozen_norm = (isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d))
                       and not any(p.requires_grad for p in module.parameters()))
        module.train(not frozen_norm)  # parents come before children: each ends as set here


def test_04_3_passes_module_by_module():
    passes("05.3", _train_mode_by_modules)


def _norms_eval(kinds):
    def train_mode(model):
        model.train()
        for module in model.modules():
            if isinstance(module, kinds):
                module.eval()
    return train_mode


@pytest.mark.parametrize("wrong, fragment", [
    (lambda model: model.train(), "frozen parameters updated its running statistics"),
    (lambda model: model.eval(), "still in evaluation mode"),
    (_norms_eval(nn.modules.batchnorm._BatchNorm), "trainable did not update its statistics"),
    (lambda model: [m.eval() if isinstance(m, nn.BatchNorm2d) and not m.weight.requires_grad
                    else m.train() for m in model.modules()],
     "first BatchNorm1d is frozen, a BatchNorm layer with frozen parameters"),  # 2d only
])
def test_04_3_wrong_modes_are_named(wrong, fragment):
    fails("05.3", wrong, fragment)


def test_groups_counting_only_trainable_blocks_fails():
    def discriminative_groups(model, lr, decay):
        live = [(name, block) for name, block in blocks(model)
                if any(p.requires_grad for p in block.parameters())]
        return [{"params": [p for p in block.parameters() if p.requires_grad],
                 "lr": lr * decay ** (len(live) - 1 - i)} for i, (name, block) in enumerate(live)]

    fails("05.2", discriminative_groups, "counting every block of the model")
