"""Stochastic gradient descent, written from first principles.

One step of SGD on a parameter ``p`` with gradient ``g = dL/dp``::

    g  <- g + weight_decay * p          # the gradient of the L2 penalty (weight_decay / 2) ||p||^2
    v  <- momentum * v + g              # velocity: a running sum of past gradients
    d  <- g + momentum * v  (Nesterov)  # look ahead along the velocity
          v                 (classical)
    p  <- p - lr * d

With ``momentum=0`` this is plain gradient descent, ``p <- p - lr * g``.
The update is the same as ``torch.optim.SGD`` with ``dampening=0`` (the tests check it to 1e-6).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from .checks import ParameterError, check_number


class SGD(torch.optim.Optimizer):
    """Gradient descent with optional momentum, Nesterov momentum and weight decay.

    Args:
        params: parameters, or a list of dicts ``{"params": [...], "lr": ...}`` (parameter
            groups, e.g. a lower learning rate for early layers). Parameters that are frozen
            (``requires_grad=False``) or received no gradient are skipped.
        lr: learning rate, > 0.
        momentum: in [0, 1); 0 is plain gradient descent.
        weight_decay: L2 penalty strength, >= 0.
        nesterov: use Nesterov momentum (needs ``momentum > 0``).

    Works on tensors of any shape: the update is elementwise.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 0.01,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        check_hyperparameters(lr=lr, momentum=momentum, weight_decay=weight_decay,
                              nesterov=nesterov)
        params = list(params)  # a generator such as model.parameters() can be read only once
        if not params:
            raise ParameterError(
                "SGD got no parameters. model.parameters() is a generator that is empty once "
                "read: call it again (or keep list(model.parameters())); with param_groups, "
                "check that some part of the model is trainable")
        defaults = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay,
                    "nesterov": nesterov}
        super().__init__(params, defaults)  # calls add_param_group for every group

    def add_param_group(self, param_group: dict) -> None:
        """Add a group (e.g. layers unfrozen later in training), checking its settings first:
        a group may override the defaults, so its values are checked too."""
        settings = {**self.defaults, **param_group}
        check_hyperparameters(lr=settings["lr"], momentum=settings["momentum"],
                              weight_decay=settings["weight_decay"],
                              nesterov=settings["nesterov"])
        super().add_param_group(param_group)

    @torch.no_grad()
    def step(self, closure=None):
        """Update every parameter that has a gradient, in place. Returns the closure's loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum = group["lr"], group["momentum"]
            weight_decay, nesterov = group["weight_decay"], group["nesterov"]
            for p in group["params"]:
                if p.grad is None or not p.requires_grad:
                    continue  # frozen, or not used in this loss: leave it exactly as it is
                g = p.grad
                if weight_decay != 0:
                    g = g.add(p, alpha=weight_decay)
                if momentum != 0:
                    v = self.state[p].get("velocity")
                    if v is None:
                        v = self.state[p]["velocity"] = g.clone()
                    else:
                        v.mul_(momentum).add_(g)
                    g = g.add(v, alpha=momentum) if nesterov else v
                p.add_(g, alpha=-lr)
        return loss


def check_hyperparameters(*, lr: float, momentum: float, weight_decay: float,
                          nesterov: bool) -> None:
    """Raise ``ValueError`` naming the bad value and the accepted range."""
    check_number(lr, "lr", low=0, low_open=True, hint="try 0.01 to 0.1 for a small CNN")
    check_number(momentum, "momentum", low=0, high=1, high_open=True,
                 hint="0.9 is the usual choice, 0 switches it off")
    check_number(weight_decay, "weight_decay", low=0, hint="0 switches it off")
    if not isinstance(nesterov, bool):
        raise ParameterError(f"nesterov={nesterov!r} must be True or False")
    if nesterov and momentum == 0:
        raise ParameterError("nesterov=True needs momentum > 0 (e.g. momentum=0.9)")
