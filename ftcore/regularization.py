"""Penalties on the weights, added to the loss: ``fit(model, train, penalty=l2_penalty(1e-3))``.

Each function returns a callable ``penalty(model) -> scalar tensor`` that ``fit`` adds to the
cross-entropy of every batch, so its gradient joins the gradient of the loss::

    L2     (strength / 2) * sum_i w_i^2            gradient  strength * w_i
    L1      strength       * sum_i |w_i|           gradient  strength * sign(w_i)
    L2-SP  (strength / 2) * sum_i (w_i - w0_i)^2   gradient  strength * (w_i - w0_i)

where ``w0`` are the pre-trained weights (L2-SP: "starting point", Li, Grandvalet and Davoine,
2018). L2 pulls every weight towards zero; L2-SP pulls the fine-tuned weights back towards the
pre-trained ones, so the model may adapt but not forget what it started from.

The L2 penalty is scaled by 1/2 so that its gradient is ``strength * w``: exactly the term that
``ftcore.optim.SGD(weight_decay=strength)`` adds to the gradient. With (this) SGD, an L2 penalty
and weight decay of the same strength are the same update; they differ for adaptive optimizers
such as Adam, where decoupled weight decay (AdamW) is not an L2 penalty.

Only trainable parameters (``requires_grad=True``) are penalised: a frozen parameter receives no
gradient either way. Like ``weight_decay``, the penalties cover every trainable parameter,
biases and BatchNorm scales included.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
from torch import nn

Penalty = Callable[[nn.Module], torch.Tensor]


def check_strength(strength: float, name: str = "strength") -> float:
    """Return ``strength`` as a float; raise ``ValueError`` unless it is finite and >= 0."""
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) \
            or not math.isfinite(strength) or strength < 0:
        raise ValueError(f"{name}={strength!r} must be a finite number >= 0 (0 switches the "
                         "penalty off; typical values are 1e-4 to 1e-2)")
    return float(strength)


def _trainable(model: nn.Module):
    return [p for p in model.parameters() if p.requires_grad]


def l2_penalty(strength: float) -> Penalty:
    """``(strength / 2) * sum of squared trainable weights``; the same as SGD's weight decay."""
    strength = check_strength(strength)

    def penalty(model: nn.Module) -> torch.Tensor:
        return strength / 2 * _total([p.pow(2).sum() for p in _trainable(model)], model)

    penalty.__name__ = f"l2_penalty({strength:g})"
    return penalty


def l1_penalty(strength: float) -> Penalty:
    """``strength * sum of absolute trainable weights``: pushes weights to exactly zero."""
    strength = check_strength(strength)

    def penalty(model: nn.Module) -> torch.Tensor:
        return strength * _total([p.abs().sum() for p in _trainable(model)], model)

    penalty.__name__ = f"l1_penalty({strength:g})"
    return penalty


def l2sp_penalty(strength: float,
                 reference: nn.Module | Mapping[str, torch.Tensor]) -> Penalty:
    """``(strength / 2) * sum of (w - w0)^2``: L2 towards the pre-trained weights ``w0``.

    Args:
        strength: >= 0.
        reference: the pre-trained model, or its ``state_dict``. Its weights are COPIED now, so
            passing the very model you are about to fine-tune is fine: the penalty remembers
            where it started.

    A parameter is compared with the reference parameter of the same name. Parameters that
    have no counterpart, or whose shape differs (typically a new head with a different number
    of classes), are skipped: there is no starting point to pull them back to. Li et al. (2018)
    put a plain L2 penalty on those instead; add ``l2_penalty`` on the head yourself if you
    want that. Raises ``ValueError`` at the first call if no parameter matches at all (the
    reference is then of a different architecture).
    """
    strength = check_strength(strength)
    if isinstance(reference, nn.Module):
        reference = dict(reference.named_parameters())
    elif not isinstance(reference, Mapping):
        raise TypeError(f"reference must be a model or a state_dict, got "
                        f"{type(reference).__name__}")
    start = {name: torch.as_tensor(w).detach().clone() for name, w in reference.items()}

    def penalty(model: nn.Module) -> torch.Tensor:
        terms = []
        for name, p in model.named_parameters():
            w0 = start.get(name)
            if p.requires_grad and w0 is not None and w0.shape == p.shape:
                if w0.device != p.device:
                    w0 = start[name] = w0.to(p.device)
                terms.append((p - w0).pow(2).sum())
        if not terms and not any(name in start and start[name].shape == p.shape
                                 for name, p in model.named_parameters()):
            raise ValueError("l2sp_penalty: no parameter of the model matches the reference by "
                             "name and shape; pass the pre-trained model the fine-tuned model "
                             "was made from")
        return strength / 2 * _total(terms, model)

    penalty.__name__ = f"l2sp_penalty({strength:g})"
    return penalty


def _total(terms: list[torch.Tensor], model: nn.Module) -> torch.Tensor:
    """The sum of scalar ``terms``; a zero scalar on the model's device when there are none."""
    if terms:
        return torch.stack(terms).sum()
    return torch.zeros((), device=next(model.parameters(), torch.zeros(())).device)
