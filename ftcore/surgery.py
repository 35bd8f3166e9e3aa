"""Model surgery for transfer learning: replace the head, freeze parts, set learning rates.

Fine-tuning takes a pre-trained model, replaces its output layer (the *head*) to match the
new task's classes, freezes some of the body, and trains the rest with a lower learning rate::

    model = pretrained_cnn()
    replace_head(model, 5)                  # new Linear(hidden, 5); the body keeps its weights
    freeze(model, "features")               # feature extraction: only the head trains
    fit(model, train, epochs=5)

or, in one call, ``prepare(model, "feature_extraction", num_classes=5)``.

Everything works on ftcore's :class:`~ftcore.models.SmallCNN` and, unchanged, on torchvision's
classifiers (ResNet's ``fc``, MobileNet's and VGG's ``classifier[-1]``, ViT's ``heads.head``).

*Blocks* are the units that depth counts in: a model's top-level parts in forward order, with
the body container ``features`` opened one level. SmallCNN: ``features.conv1``,
``features.conv2``, ``features.fc``, ``head``; ResNet: ``conv1``, ``bn1``, ``layer1`` ...
``layer4``, ``fc``. Parts without parameters (ReLU, pooling) are not blocks.

Freezing sets ``requires_grad=False``: a frozen parameter gets no gradient, so
:class:`ftcore.optim.SGD` neither updates nor decays it. A frozen BatchNorm must also stop
updating its running statistics; :func:`ftcore.train.set_train_mode` (which ``fit`` calls)
keeps BatchNorm layers with frozen parameters in evaluation mode. In a loop of your own, call
``set_train_mode(model)`` instead of ``model.train()``.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .checks import check_choice, check_int, check_number, check_type
from .models import SmallCNN, count_parameters
from .names import STRATEGIES

#: Where :func:`find_head` looks, in this order (a ``classifier`` Sequential: its last Linear).
HEAD_PLACES = ("head", "fc", "classifier[-1]", "heads.head")


# --- the head ---------------------------------------------------------------------------------

def find_head(model: nn.Module) -> tuple[str, nn.Linear]:
    """The output layer: its dotted name and the ``nn.Linear`` itself.

    Looks at ``model.head`` (ftcore), ``model.fc`` (ResNet), the last Linear of
    ``model.classifier`` (MobileNet, VGG; e.g. ``"classifier.6"``) and ``model.heads.head``
    (ViT). The layer found must be the model's last ``nn.Linear`` (a hidden layer called
    ``fc`` is not an output layer). Raises ``ValueError`` naming the places looked at if none
    is an ``nn.Linear``, or naming the last Linear when the one found is not it.
    """
    check_type(model, "model", nn.Module, hint="pass the network itself, e.g. "
                                               "replace_head(pretrained_cnn(), 5)")
    found = _head_candidate(model)
    if found is None:
        raise ValueError(
            f"cannot find the head of {type(model).__name__}: looked for an nn.Linear at "
            f"{', '.join('model.' + p for p in HEAD_PLACES)}. Name the output layer `head` "
            "(as ftcore.SmallCNN does) or replace it yourself.")
    name, module = found
    last_name, last = _last_linear(model)
    if module is not last:
        raise ValueError(
            f"model.{name} of {type(model).__name__} is an nn.Linear but not the output "
            f"layer: the last nn.Linear is model.{last_name}. ftcore looks for the output "
            f"layer at {', '.join('model.' + p for p in HEAD_PLACES)}; replace "
            f"model.{last_name} yourself, e.g. model.{last_name} = "
            f"nn.Linear({last.in_features}, num_classes)")
    return name, module


def _head_candidate(model: nn.Module) -> tuple[str, nn.Linear] | None:
    """``(name, nn.Linear)`` at the first of :data:`HEAD_PLACES` that holds one, or None."""
    for name in ("head", "fc"):
        if isinstance(getattr(model, name, None), nn.Linear):
            return name, getattr(model, name)
    classifier = getattr(model, "classifier", None)
    if isinstance(classifier, nn.Linear):
        return "classifier", classifier
    if isinstance(classifier, nn.Sequential):
        linears = [(n, m) for n, m in classifier.named_children() if isinstance(m, nn.Linear)]
        if linears:
            return f"classifier.{linears[-1][0]}", linears[-1][1]
    heads = getattr(model, "heads", None)
    if isinstance(getattr(heads, "head", None), nn.Linear):
        return "heads.head", heads.head
    return None


def _last_linear(model: nn.Module) -> tuple[str, nn.Linear]:
    """The last ``nn.Linear`` registered in ``model`` (its output layer, in every classifier
    whose layers are registered in forward order)."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)][-1]


def replace_head(model: nn.Module, num_classes: int, seed: int | None = None) -> nn.Module:
    """Swap the head for a fresh ``nn.Linear(in_features, num_classes)``, in place.

    The body keeps its weights; the new head is trainable, on the old head's device and dtype,
    and initialised like any new ``nn.Linear`` (from ``seed`` if given, without touching the
    global random state). Returns ``model``.
    """
    num_classes = check_int(num_classes, "num_classes", low=1,
                            hint="the number of classes of the new task, e.g. 5")
    if seed is not None:
        check_int(seed, "seed", low=0)
    name, old = find_head(model)
    factory = {"device": old.weight.device, "dtype": old.weight.dtype}
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None, **factory)
    parent, _, attribute = name.rpartition(".")
    setattr(model.get_submodule(parent), attribute, new)
    if isinstance(model, SmallCNN):  # keep the recorded shape true (checkpoints save it)
        model.config = dataclasses.replace(model.config, num_classes=num_classes)
    return model


# --- blocks and freezing ----------------------------------------------------------------------

def _has_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's blocks from input to output: ``[(dotted name, module), ...]``.

    Top-level children with parameters, in registration (= forward) order; a child called
    ``features`` (the body, in ftcore and torchvision) is opened into its own children.
    """
    found = []
    for name, child in model.named_children():
        if name == "features" and len(list(child.children())) > 0:
            found += [(f"{name}.{n}", m) for n, m in child.named_children() if _has_parameters(m)]
        elif _has_parameters(child):
            found.append((name, child))
    return found


def body_blocks(model: nn.Module) -> list[str]:
    """Names of the blocks before the head (those :func:`freeze_below` counts)."""
    head, _ = find_head(model)
    return [name for name, _ in blocks(model)
            if not (head == name or head.startswith(name + "."))]


def part_names(model: nn.Module) -> list[str]:
    """Names :func:`freeze` accepts, for error messages: top-level parts and blocks."""
    names = [n for n, m in model.named_children() if _has_parameters(m)]
    return names + [n for n, _ in blocks(model) if n not in names]


def _unknown_part(model: nn.Module, part: str) -> ValueError:
    return ValueError(f"{part!r} is not a part of {type(model).__name__}; valid names: "
                      f"{', '.join(part_names(model))} (or any deeper dotted name, e.g. "
                      f"from model.named_modules())")


def _module(model: nn.Module, part: str) -> nn.Module:
    """The submodule called ``part`` (a dotted name); ``ValueError`` listing valid names."""
    try:
        return model.get_submodule(part)
    except AttributeError:
        raise _unknown_part(model, part) from None


def _parameters_of(model: nn.Module, part: str) -> list[nn.Parameter]:
    """The parameters of a dotted part name (a module, or a single parameter)."""
    try:
        return list(model.get_submodule(part).parameters())
    except AttributeError:
        pass
    try:
        return [model.get_parameter(part)]
    except AttributeError:
        raise _unknown_part(model, part) from None


def _set_trainable(model: nn.Module, parts: tuple[str, ...], trainable: bool) -> nn.Module:
    check_type(model, "model", nn.Module)
    for part in parts:
        if not isinstance(part, str) or not part:
            raise ValueError(f"part {part!r} is not a part's name: give dotted names such as "
                             f"{', '.join(map(repr, part_names(model)[:3]))}, or no names at "
                             "all for the whole model")
    parameters = ([p for part in parts for p in _parameters_of(model, part)] if parts
                  else list(model.parameters()))  # check every name before changing anything
    for p in parameters:
        p.requires_grad_(trainable)
    return model


def freeze(model: nn.Module, *parts: str) -> nn.Module:
    """Make the named parts untrainable (``requires_grad=False``); no parts: the whole model.

    ``freeze(model, "features")``, ``freeze(model, "features.conv1", "features.conv2")``.
    Unknown names raise ``ValueError`` listing the valid ones. Returns ``model``.
    """
    return _set_trainable(model, parts, False)


def unfreeze(model: nn.Module, *parts: str) -> nn.Module:
    """Make the named parts trainable again; no parts: the whole model. Returns ``model``."""
    return _set_trainable(model, parts, True)


def freeze_below(model: nn.Module, k: int | str) -> nn.Module:
    """Freeze the first ``k`` body blocks (counted from the input); train everything else.

    ``k`` is a count, 0 (nothing frozen) to ``len(body_blocks(model))`` (the whole body frozen:
    feature extraction), or a block's name: freeze every block before it. On SmallCNN,
    ``freeze_below(model, 2)`` and ``freeze_below(model, "features.fc")`` both freeze
    ``features.conv1`` and ``features.conv2``. Returns ``model``.
    """
    k, body = _check_blocks(model, k, "k"), body_blocks(model)
    unfreeze(model)
    if k:
        freeze(model, *body[:k])
        for p in _outside_blocks(model):  # input-side extras, e.g. ViT's class_token
            p.requires_grad_(False)
    return model


def _check_blocks(model: nn.Module, k: int | str, name: str) -> int:
    """A count of body blocks, from a count or a block's name; ``ValueError`` otherwise."""
    body = body_blocks(model)
    if isinstance(k, str):
        if k not in body:
            raise ValueError(f"block {k!r} is not one of {', '.join(body)}")
        return body.index(k)
    return check_int(k, name, low=0, high=len(body),
                     hint=f"the number of body blocks to freeze (the body blocks: "
                          f"{', '.join(body)}), or one of their names")


def _outside_blocks(model: nn.Module, trainable_only: bool = False) -> list[nn.Parameter]:
    """Parameters that belong to no block (e.g. ViT's ``class_token``)."""
    covered = {id(p) for _, m in blocks(model) for p in m.parameters()}
    return [p for p in model.parameters()
            if id(p) not in covered and (p.requires_grad or not trainable_only)]


def is_frozen(module: nn.Module) -> bool:
    """True if ``module`` has parameters and none of them is trainable."""
    parameters = list(module.parameters())
    return bool(parameters) and not any(p.requires_grad for p in parameters)


def trainable_summary(model: nn.Module) -> list[dict]:
    """Per block: ``{"name", "trainable", "total"}`` parameter counts, input to output.

    Parameters outside every block (e.g. ViT's ``class_token``) are one last row, ``"(other)"``.
    """
    rows = [{"name": name, "trainable": count_parameters(m, trainable_only=True),
             "total": count_parameters(m)} for name, m in blocks(model)]
    rest = _outside_blocks(model)
    if rest:
        rows.append({"name": "(other)", "trainable": sum(p.numel() for p in rest
                                                         if p.requires_grad),
                     "total": sum(p.numel() for p in rest)})
    return rows


# --- discriminative learning rates ------------------------------------------------------------

def param_groups(model: nn.Module, lr: float, decay: float = 0.5) -> list[dict]:
    """Optimizer parameter groups with a lower learning rate for earlier blocks.

    The last block (the head) gets ``lr``, the one before it ``lr * decay``, and so on::

        lr_i = lr * decay ** (number_of_blocks - 1 - i)      i = 0 (input) ... (head)

    Only trainable parameters are included; blocks with none are left out. Parameters outside
    every block join the first block's (lowest) rate. Each group carries its block's ``name``.
    Use as ``fit(model, train, optimizer=SGD(param_groups(model, 0.05), momentum=0.9))``.
    """
    check_type(model, "model", nn.Module)
    check_number(lr, "lr", low=0, low_open=True, hint="e.g. lr=0.05")
    check_number(decay, "decay", low=0, high=1, low_open=True,
                 hint="each earlier block gets decay times the rate of the block after it "
                      "(1 = one rate for all)")
    named = blocks(model)
    groups = []
    for i, (name, module) in enumerate(named):
        params = [p for p in module.parameters() if p.requires_grad]
        if params:
            groups.append({"params": params, "lr": lr * decay ** (len(named) - 1 - i),
                           "name": name})
    rest = _outside_blocks(model, trainable_only=True)
    if rest:
        groups.append({"params": rest, "lr": lr * decay ** max(len(named) - 1, 0),
                       "name": "(other)"})
    if not groups:
        raise ValueError("param_groups: the model has no trainable parameters; unfreeze a "
                         "part first, e.g. unfreeze(model, 'head')")
    return groups


# --- strategies -------------------------------------------------------------------------------

def reinitialise(model: nn.Module, *parts: str, seed: int | None = None) -> nn.Module:
    """Reset the named parts' weights (and BatchNorm statistics) to a fresh random
    initialisation; no parts: the whole model. From ``seed`` if given, without touching the
    global random state. Returns ``model``."""
    check_type(model, "model", nn.Module)
    if seed is not None:
        check_int(seed, "seed", low=0)
    roots = [_module(model, part) for part in parts] if parts else [model]
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        for root in roots:
            for module in root.modules():
                if hasattr(module, "reset_parameters") and module is not model:
                    module.reset_parameters()
    return model


def prepare(model: nn.Module, strategy: str, num_classes: int, *, frozen_blocks: int | None = None,
            seed: int | None = None) -> nn.Module:
    """Make a pre-trained ``model`` ready for a new task with ``num_classes`` classes, in place.

    ======================  ===============================================================
    strategy                what it does (the head is always new and trainable)
    ======================  ===============================================================
    ``scratch``             re-initialise every weight: no transfer (the baseline)
    ``feature_extraction``  freeze the whole body: only the new head trains
    ``partial``             freeze the first ``frozen_blocks`` body blocks (default: all but
                            the last), train the rest
    ``full``                everything trainable (use a lower learning rate)
    ======================  ===============================================================

    ``seed`` fixes the new head's (and, for ``scratch``, every layer's) initial weights.
    Returns ``model``.
    """
    check_choice(strategy, "strategy", STRATEGIES)
    if frozen_blocks is not None and strategy != "partial":
        raise ValueError(f"frozen_blocks={frozen_blocks!r} only applies to strategy='partial', "
                         f"not {strategy!r}")
    # every argument is checked before the model is changed (replace_head is the first change)
    check_int(num_classes, "num_classes", low=1, hint="the number of classes of the new task")
    if seed is not None:
        check_int(seed, "seed", low=0)
    if frozen_blocks is not None:
        _check_blocks(model, frozen_blocks, "frozen_blocks")
    replace_head(model, num_classes, seed=seed)
    body = body_blocks(model)
    if strategy == "scratch":
        reinitialise(model, seed=seed)
        unfreeze(model)
    elif strategy == "feature_extraction":
        freeze(model)
        unfreeze(model, find_head(model)[0])
    elif strategy == "partial":
        freeze_below(model, max(len(body) - 1, 0) if frozen_blocks is None else frozen_blocks)
    else:
        unfreeze(model)
    return model


# --- what freezing saves ----------------------------------------------------------------------

def optimizer_state_size(optimizer: torch.optim.Optimizer) -> int:
    """Scalars the optimizer keeps between steps (momentum buffers, Adam's two moments, ...):
    the total size of the tensors in ``optimizer.state``. The state is created at the first
    step, so call this after one: SGD with momentum keeps one number per trained parameter,
    Adam two (plus a step count per tensor; AMSGrad a third, the largest second moment), and a
    frozen parameter none. A step count is one number whether it is kept as a tensor (torch's
    Adam) or as a Python int (:class:`ftcore.optim.Adam`)."""
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(f"optimizer must be a torch.optim.Optimizer (e.g. ftcore.optim.SGD), "
                         f"got {type(optimizer).__name__}")
    return sum(value.numel() if isinstance(value, torch.Tensor) else 1
               for state in optimizer.state.values() for value in state.values()
               if isinstance(value, (torch.Tensor, int, float)) and not isinstance(value, bool))
