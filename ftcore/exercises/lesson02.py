"""Checks for lesson 02's exercises: a stable log-softmax, the cross-entropy's gradient with respect
to the logits, and one minibatch step of SGD.

Every check builds its own random problem (from a fixed seed, leaving the global random state
alone) and compares the student's function with an independent reference: ``torch.log_softmax``,
autograd's gradient of ``F.cross_entropy``, or ``torch.optim.SGD`` on a copy of the model.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .checks import Exercise, expect, unchanged

DTYPE = torch.float64


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _logits(n: int, c: int, scale: float, seed: int, dtype=DTYPE) -> torch.Tensor:
    return (scale * torch.randn(n, c, generator=_generator(seed), dtype=DTYPE)).to(dtype)


def _labels(n: int, c: int, seed: int) -> torch.Tensor:
    return torch.randint(c, (n,), generator=_generator(seed))


def _tensor_like(result, z: torch.Tensor, what: str) -> torch.Tensor:
    expect(isinstance(result, torch.Tensor), f"return a tensor, not a {type(result).__name__}")
    expect(result.shape == z.shape, f"for logits of shape {tuple(z.shape)} {what} should have the "
                                    f"same shape, not {tuple(result.shape)}")
    return result.detach()


# --- 02.1 a stable log-softmax -----------------------------------------------------------------

def _check_log_softmax(log_softmax) -> None:
    z = _logits(7, 5, 2.0, seed=0)
    result = _tensor_like(unchanged(log_softmax, z, what="the logits"), z, "the result")
    expect(result.dtype == z.dtype, f"for float64 logits the result should be float64, not "
                                    f"{result.dtype}: compute in the logits' dtype")
    if torch.allclose(result, torch.softmax(z, dim=-1), atol=1e-9):
        expect(False, "you returned the probabilities themselves: return their logarithm")
    if torch.allclose(result, torch.log_softmax(z, dim=0), atol=1e-9):
        expect(False, "each column sums to one instead of each row: normalise over the classes "
                      "(the last axis), once per example, not over the batch")
    expect(torch.allclose(result, torch.log_softmax(z, dim=-1), rtol=1e-9, atol=1e-10),
           "on moderate logits your result differs from log softmax: log p_k = z_k - log sum_j "
           "exp(z_j), along the last axis")
    why = {"large positive": "exp(z) overflows", "large negative": "exp(z) underflows to 0",
           "widely spread": "some exponent is large"}
    for name, scale, shift in (("large positive", 3.0, 1000.0), ("large negative", 3.0, -1000.0),
                               ("widely spread", 300.0, 0.0)):
        for dtype in (torch.float32, DTYPE):
            z = _logits(6, 4, scale, seed=1, dtype=dtype) + shift
            result = _tensor_like(log_softmax(z.clone()), z, "the result")
            expect(torch.isfinite(result).all(),
                   f"for {name} logits ({dtype}) your result holds inf or nan: {why[name]}. "
                   "Shift each row by its largest logit before exponentiating (it changes no "
                   "probability, and no exponent is then above 0)")
            expect(result.dtype == dtype, f"for {dtype} logits return {dtype}, not {result.dtype}")
            reference = torch.log_softmax(z.to(DTYPE), dim=-1)
            expect(torch.allclose(result.to(DTYPE), reference, atol=1e-4 if dtype != DTYPE
                                  else 1e-9), f"for {name} logits ({dtype}) your result is finite "
                                              "but wrong: after the shift, add it back in the "
                                              "right place")


# --- 02.2 the gradient of the cross-entropy with respect to the logits -------------------------

def _autograd(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    z = z.detach().clone().requires_grad_(True)
    F.cross_entropy(z, y).backward()
    return z.grad


def _check_cross_entropy_grad(cross_entropy_grad) -> None:
    for case, (n, c, scale) in enumerate(((8, 5, 2.0), (3, 10, 1.0), (16, 4, 1000.0))):
        z, y = _logits(n, c, scale, seed=10 + case), _labels(n, c, seed=20 + case)
        result = _tensor_like(unchanged(cross_entropy_grad, z, y, what="the logits or labels"),
                              z, "the gradient")
        result = result.to(DTYPE)
        exact = _autograd(z, y)
        expect(torch.isfinite(result).all(),
               "your gradient holds inf or nan for large logits: compute the softmax stably "
               "(subtract the largest logit first)")
        if torch.allclose(result, -exact, atol=1e-10):
            expect(False, "your gradient has the opposite sign of the true one: the derivative "
                          "of -log p_y pulls the true class's logit up, so its gradient entry "
                          "is negative")
        if torch.allclose(result, n * exact, atol=1e-10):
            expect(False, f"your gradient is {n} times too large for a batch of {n}: the loss is "
                          "the mean over the examples, not their sum")
        expect(result.sum(dim=1).abs().max() < 1e-9,
               "the rows of your gradient do not sum to 0, as softmax(z) - onehot(y) does: did "
               "you subtract the one-hot label, once per example, and normalise each row (the "
               "classes), not each column?")
        expect(torch.allclose(result, exact, rtol=1e-8, atol=1e-12),
               "your gradient differs from autograd's gradient of F.cross_entropy (the mean over "
               "the batch): compare each entry with (p_k - [k = y]) / N")


# --- 02.3 one minibatch step of SGD ------------------------------------------------------------

def _tiny_model(seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)).to(DTYPE)
    model[0].bias.requires_grad_(False)              # frozen: must stay as it is
    return model


def _stale_gradients(model: nn.Module, seed: int) -> None:
    """Leave gradients of an unrelated loss in ``.grad``, as an earlier backward would."""
    x = torch.randn(4, 6, generator=_generator(seed), dtype=DTYPE)
    (model(x) ** 2).sum().backward()


def _check_sgd_step(sgd_step) -> None:
    lr, steps = 0.1, 3
    model = _tiny_model(seed=0)
    reference = copy.deepcopy(model)
    _stale_gradients(model, seed=1)
    stale = [p.grad.clone() if p.grad is not None else None for p in model.parameters()]
    optimizer = torch.optim.SGD([p for p in reference.parameters() if p.requires_grad], lr=lr)
    frozen = model[0].bias.detach().clone()
    for step in range(1, steps + 1):
        g = _generator(100 + step)
        x, y = torch.randn(8, 6, generator=g, dtype=DTYPE), torch.randint(3, (8,), generator=g)
        before = [p.detach().clone() for p in model.parameters()]
        optimizer.zero_grad()
        loss = F.cross_entropy(reference(x), y)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            loss_after = F.cross_entropy(reference(x), y).item()
        returned = sgd_step(model, x.clone(), y.clone(), lr)
        expect(isinstance(returned, float), f"return the loss as a Python float (loss.item()), "
                                            f"not a {type(returned).__name__}")
        expect(torch.equal(model[0].bias.detach(), frozen),
               "your step changed a parameter with requires_grad=False: update only the "
               "parameters that require a gradient")
        now = [p.detach() for p in model.parameters()]
        expect(any(not torch.equal(a, b) for a, b in zip(now, before, strict=True)),
               "after your step the parameters are unchanged: update them in place (for example "
               "`p -= lr * p.grad` under torch.no_grad()), not by rebinding a name")
        if step == 1 and _accumulated(before, stale, model, reference, lr):
            expect(False, "your first step used the gradient plus gradients the parameters held "
                          "from an earlier computation: clear them before backward() "
                          "(model.zero_grad(), or p.grad = None)")
        with torch.no_grad():
            rose = F.cross_entropy(model(x), y).item() > loss.item() + 1e-12
        matches = all(torch.allclose(a, b.detach(), rtol=1e-10, atol=1e-12)
                      for a, b in zip(now, reference.parameters(), strict=True))
        if not matches:
            expect(not rose, "after your step the loss on the batch rose: step against the "
                             "gradient, theta - lr * grad")
            expect(False, f"after {step} step{'s' * (step > 1)} your parameters differ from "
                          f"torch.optim.SGD's: "
                          + ("are the gradients cleared before every backward, so that each "
                             "step uses this batch's gradient alone?" if step > 1 else
                             "the step is theta <- theta - lr * dL/dtheta, with L the mean "
                             "cross-entropy of the batch"))
        expect(abs(returned - loss.item()) < 1e-10 or abs(returned - loss_after) > 1e-10,
               "you returned the loss after the update: return the loss the step started from")
        expect(abs(returned - loss.item()) < 1e-10,
               "the loss you return is not the batch's mean cross-entropy before the step")


def _accumulated(before, stale, model, reference, lr) -> bool:
    """Whether the student's first step equals SGD with the stale gradients added in."""
    expected = []
    for p0, s, p_ref, p in zip(before, stale, reference.parameters(), model.parameters(),
                               strict=True):
        if s is None or not p.requires_grad:
            expected.append(p0)
            continue
        fresh = (p0 - p_ref.detach()) / lr              # this batch's gradient
        expected.append(p0 - lr * (fresh + s))
    return all(torch.allclose(p.detach(), e, rtol=1e-10, atol=1e-12)
               for p, e in zip(model.parameters(), expected, strict=True))


EXERCISES: list[Exercise] = [
    Exercise(
        id="02.1",
        title="A stable log-softmax",
        hint="subtract each row's largest logit first (softmax does not change when every logit "
             "moves by the same amount); then log p_k = z_k - log sum_j exp(z_j)",
        test=_check_log_softmax,
    ),
    Exercise(
        id="02.2",
        title="The gradient of the cross-entropy",
        hint="for one example it is softmax(z) - onehot(y); the loss is a mean over N examples",
        test=_check_cross_entropy_grad,
    ),
    Exercise(
        id="02.3",
        title="One minibatch step of SGD",
        hint="clear old gradients, compute the mean cross-entropy and call backward(), then "
             "update every parameter with requires_grad under torch.no_grad(); return "
             "loss.item()",
        test=_check_sgd_step,
    ),
]
