"""Stochastic gradient descent and Adam, written from first principles.

One step of SGD on a parameter ``p`` with gradient ``g = dL/dp``::

    g  <- g + weight_decay * p          # the gradient of the L2 penalty (weight_decay / 2) ||p||^2
    v  <- momentum * v + g              # velocity: a running sum of past gradients
    d  <- g + momentum * v  (Nesterov)  # look ahead along the velocity
          v                 (classical)
    p  <- p - lr * d

With ``momentum=0`` this is plain gradient descent, ``p <- p - lr * g``.
The update is the same as ``torch.optim.SGD`` with ``dampening=0`` (the tests check it to 1e-6).

Adam (Kingma & Ba, 2015) keeps, per parameter, running means of the gradient and of its square,
and scales each number's step by its own typical gradient size. Step ``t = 1, 2, ...``::

    g     <- g + weight_decay * p               # Adam: L2 decay, coupled to the gradient
    m     <- beta1 * m + (1 - beta1) * g        # first moment: a running mean of g
    v     <- beta2 * v + (1 - beta2) * g^2      # second moment: a running mean of g^2
    v_max <- max(v_max, v)                      # amsgrad only: the largest v so far
    m_hat  = m / (1 - beta1^t)                  # bias correction: m and v start at 0, so
    v_hat  = v / (1 - beta2^t)                  #   early on they underestimate by these factors
                                                #   (amsgrad: v_max / (1 - beta2^t))
    p     <- p - lr * m_hat / (sqrt(v_hat) + eps)

``eps`` is added to ``sqrt(v_hat)``, after the bias correction: it only keeps the division
finite where a gradient has been (near) zero all along.

AdamW (Loshchilov & Hutter, 2019) decays the weights *outside* the moments instead: before the
update above (and without the first line), ``p <- p - lr * weight_decay * p``. With SGD the two
kinds of decay are the same; with Adam the coupled decay is divided by ``sqrt(v_hat)`` like the
rest of the gradient, so weights with large gradients are barely decayed. The updates are
``torch.optim.Adam`` / ``torch.optim.AdamW``'s, operation for operation (the tests check them).

:func:`make_optimizer` builds any of them by name (:data:`OPTIMIZERS`), as ``fit`` does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import torch

from .checks import ParameterError, check_choice, check_number


def _undecorated(method: Callable) -> Callable:
    """``method`` without the ``torch._disable_dynamo`` wrapper PyTorch puts on the base
    optimizer's bookkeeping. The wrapper's first call imports TorchDynamo (``torch.compile``'s
    front end: about 2 s and 100 MB in every process, each grid worker included); these plain
    loops are never compiled, so ours call what it wraps (``__wrapped__``, set by
    ``functools.wraps``), or ``method`` itself if a PyTorch release drops the wrapper."""
    return getattr(method, "__wrapped__", method)


class ElementwiseOptimizer(torch.optim.Optimizer):
    """What SGD and Adam share: settings checked when a group is added, and a step that
    updates every parameter with a gradient, number by number (``update``, one per rule).

    A subclass sets ``check`` (its settings' check, called with the group's settings as
    keywords) and writes ``update(p, group)``.
    """

    check: Callable[..., None]

    def __init__(self, params, defaults: dict) -> None:
        params = parameter_list(params, type(self).__name__)
        super().__init__(params, defaults)  # calls add_param_group for every group

    def add_param_group(self, param_group: dict) -> None:
        """Add a group (e.g. layers unfrozen later in training), checking its settings first:
        a group may override the defaults, so its values are checked too."""
        settings = {**self.defaults, **param_group}
        type(self).check(**{key: settings[key] for key in self.defaults})
        _undecorated(torch.optim.Optimizer.add_param_group)(self, param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's gradient (``None``, or zeros with ``set_to_none=False``)."""
        _undecorated(torch.optim.Optimizer.zero_grad)(self, set_to_none)

    @torch.no_grad()
    def step(self, closure=None):
        """Update every parameter that has a gradient, in place. Returns the closure's loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None or not p.requires_grad:
                    continue  # frozen, or not used in this loss: leave it exactly as it is
                self.update(p, group)
        return loss

    def update(self, p: torch.Tensor, group: dict) -> None:
        raise NotImplementedError


class SGD(ElementwiseOptimizer):
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
        super().__init__(params, {"lr": lr, "momentum": momentum,
                                  "weight_decay": weight_decay, "nesterov": nesterov})

    @staticmethod
    def check(**settings) -> None:
        check_hyperparameters(**settings)

    def update(self, p: torch.Tensor, group: dict) -> None:
        lr, momentum = group["lr"], group["momentum"]
        weight_decay, nesterov = group["weight_decay"], group["nesterov"]
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


class Adam(ElementwiseOptimizer):
    """Adam: momentum (``m``) divided by a running size of the gradient (``sqrt(v)``), per number.

    Args:
        params: parameters, or a list of dicts ``{"params": [...], "lr": ...}`` (parameter
            groups; each may set its own ``lr``, ``betas``, ``eps``, ``weight_decay`` and
            ``amsgrad``). Parameters that are frozen (``requires_grad=False``) or received no
            gradient are skipped: neither moved, nor decayed, nor given state.
        lr: learning rate, > 0. Adam's step is about ``lr`` per number whatever the gradient's
            scale, so its rates are smaller than SGD's (1e-3 is the usual start).
        betas: ``(beta1, beta2)``, each in [0, 1): how slowly ``m`` and ``v`` forget.
        eps: > 0, added to ``sqrt(v_hat)`` so the division stays finite.
        weight_decay: >= 0, added to the gradient as ``weight_decay * p`` (an L2 penalty:
            coupled, scaled by the moments like the gradient). :class:`AdamW` decouples it.
        amsgrad: divide by the largest second moment seen so far (Reddi et al., 2018).

    The state per parameter is ``step`` (``t``), ``m``, ``v`` and, with amsgrad, ``v_max``.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ) -> None:
        check_adam_hyperparameters(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                   amsgrad=amsgrad)
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps,
                                  "weight_decay": weight_decay, "amsgrad": amsgrad})

    @staticmethod
    def check(**settings) -> None:
        check_adam_hyperparameters(**settings)

    def decay(self, p: torch.Tensor, g: torch.Tensor, lr: float,
              weight_decay: float) -> torch.Tensor:
        """Adam's weight decay, coupled: the L2 penalty's gradient joins ``g`` (and so is
        averaged into ``m`` and divided by ``sqrt(v_hat)`` like the rest). Returns the new g."""
        return g.add(p, alpha=weight_decay)  # g <- g + weight_decay * p

    def update(self, p: torch.Tensor, group: dict) -> None:
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        state = self.state[p]
        if not state:  # the first step: both moments start at zero
            state.update(step=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
            if group["amsgrad"]:
                state["v_max"] = torch.zeros_like(p)
        state["step"] += 1
        t, m, v = state["step"], state["m"], state["v"]
        g = p.grad
        if group["weight_decay"] != 0:
            g = self.decay(p, g, lr, group["weight_decay"])
        m.lerp_(g, 1 - beta1)                          # m <- beta1 m + (1 - beta1) g
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)  # v <- beta2 v + (1 - beta2) g^2
        if group["amsgrad"]:  # the largest v so far; corrected below with this step's factor
            v = torch.maximum(state["v_max"], v, out=state["v_max"])
        # Bias correction, m_hat = m / (1 - beta1^t) and v_hat = v / (1 - beta2^t), folded
        # into two scalars in torch's order: dividing whole tensors would round differently,
        # and where v is tiny Adam magnifies such differences.
        sqrt_v_hat = v.sqrt() / (1 - beta2 ** t) ** 0.5
        lr_hat = lr / (1 - beta1 ** t)  # lr * m_hat == lr_hat * m
        p.addcdiv_(m, sqrt_v_hat.add_(eps), value=-lr_hat)  # p -= lr m_hat / (sqrt(v_hat) + eps)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as ``torch.optim.AdamW``.

    Each step first shrinks the weights, ``p <- p - lr * weight_decay * p``, then takes Adam's
    step on the plain gradient: the decay is the same for every weight, not divided by
    ``sqrt(v_hat)``. Everything else (and every argument) is :class:`Adam`'s; only the
    default ``weight_decay`` differs: 1e-2, as torch's.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)  # only 1e-2 is new

    def decay(self, p: torch.Tensor, g: torch.Tensor, lr: float,
              weight_decay: float) -> torch.Tensor:
        """Decoupled: shrink ``p`` itself, in place, and leave the gradient as it is."""
        p.mul_(1 - lr * weight_decay)  # p <- p - lr * weight_decay * p
        return g


#: The optimizers ``fit(optimizer=name)`` and :func:`make_optimizer` build by name (the same
#: names as :data:`ftcore.names.OPTIMIZER_NAMES`, which the command line lists).
OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW}
#: The settings :func:`make_optimizer` uses for those not given: SGD as the lessons train
#: (``fit``'s defaults; the class's own are lr=0.01 without momentum), Adam and AdamW as torch.
DEFAULTS = {"sgd": {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.0, "nesterov": False},
            "adam": {"lr": 1e-3, "weight_decay": 0.0},
            "adamw": {"lr": 1e-3, "weight_decay": 1e-2}}


def optimizer_settings(name: str, *, lr: float | None = None, momentum: float | None = None,
                       weight_decay: float | None = None, nesterov: bool | None = None) -> dict:
    """The keyword arguments :func:`make_optimizer` passes to ``OPTIMIZERS[name]``: those
    given, the rest from :data:`DEFAULTS`; checked (``ParameterError`` naming the bad value)
    without building anything, so callers can check before any work.

    ``momentum`` and ``nesterov`` are SGD's alone: with ``"adam"`` or ``"adamw"``, setting
    them is an error (Adam's momentum is ``betas[0]``), not silently ignored.
    """
    check_choice(name, "optimizer", OPTIMIZERS)
    given = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay,
             "nesterov": nesterov}
    for setting, value in given.items():
        if value is not None and setting not in DEFAULTS[name]:
            raise ParameterError(
                f"{setting}={value!r} is a setting of optimizer='sgd', not of "
                f"optimizer={name!r} (Adam's momentum is betas[0], 0.9): leave {setting} "
                f"unset, or build the optimizer yourself, e.g. "
                f"optimizer={OPTIMIZERS[name].__name__}(params, betas=(0.9, 0.999))")
    settings = {**DEFAULTS[name], **{k: v for k, v in given.items() if v is not None}}
    if name == "sgd":
        check_hyperparameters(**settings)
    else:
        check_adam_hyperparameters(**settings, betas=(0.9, 0.999), eps=1e-8, amsgrad=False)
    return settings


def make_optimizer(name: str, params: Iterable[torch.Tensor] | Iterable[dict], *,
                   lr: float | None = None, momentum: float | None = None,
                   weight_decay: float | None = None,
                   nesterov: bool | None = None) -> torch.optim.Optimizer:
    """``OPTIMIZERS[name](params, ...)``: ``"sgd"``, ``"adam"`` or ``"adamw"`` over ``params``
    with the settings given; see :func:`optimizer_settings` for the defaults and the checks.

    >>> make_optimizer("adamw", model.parameters(), lr=1e-3)  # doctest: +SKIP
    """
    settings = optimizer_settings(name, lr=lr, momentum=momentum, weight_decay=weight_decay,
                                  nesterov=nesterov)
    return OPTIMIZERS[name](params, **settings)


def parameter_list(params, who: str) -> list:
    """``params`` as a list (a generator such as ``model.parameters()`` can be read only once);
    ``ParameterError`` if it is empty."""
    params = list(params)
    if not params:
        raise ParameterError(
            f"{who} got no parameters. model.parameters() is a generator that is empty once "
            "read: call it again (or keep list(model.parameters())); with param_groups, "
            "check that some part of the model is trainable")
    return params


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


def check_adam_hyperparameters(*, lr: float, betas, eps: float, weight_decay: float,
                               amsgrad: bool) -> None:
    """Raise ``ParameterError`` naming the bad value and the accepted range."""
    check_number(lr, "lr", low=0, low_open=True, hint="1e-3 is Adam's usual rate")
    if isinstance(betas, (str, bytes, Mapping)) or not hasattr(betas, "__len__") \
            or len(betas) != 2:
        raise ParameterError(f"betas={betas!r} must be a pair (beta1, beta2), each in [0, 1); "
                             "e.g. betas=(0.9, 0.999)")
    for i, beta in enumerate(betas, start=1):
        check_number(beta, f"betas={tuple(betas)!r}: beta{i}", low=0, high=1, high_open=True,
                     hint="e.g. betas=(0.9, 0.999); 1 would never forget the first gradient")
    check_number(eps, "eps", low=0, low_open=True, hint="e.g. eps=1e-8")
    check_number(weight_decay, "weight_decay", low=0, hint="0 switches it off")
    if not isinstance(amsgrad, bool):
        raise ParameterError(f"amsgrad={amsgrad!r} must be True or False")
