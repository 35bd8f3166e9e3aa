"""Lesson 02's exercise checks: a correct answer written another way passes, and each typical
mistake fails with a message that points at it (without the answer)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import fails, passes

# --- 02.1 a stable log-softmax -----------------------------------------------------------------


def test_log_softmax_through_a_stable_logsumexp_passes():
    def log_softmax(z):
        m = z.amax(dim=1, keepdim=True)
        return z - (m + torch.log(torch.exp(z - m).sum(dim=1, keepdim=True)))

    passes("02.1", log_softmax)


@pytest.mark.parametrize("mistake, answer, fragment", [
    ("the naive formula", lambda z: torch.log(z.exp() / z.exp().sum(-1, keepdim=True)),
     "exp\\(z\\) overflows"),
    ("shifted by the smallest logit (overflows upward)",
     lambda z: (lambda s: s - s.exp().sum(-1, keepdim=True).log())(
         z - z.min(dim=-1, keepdim=True).values), "inf or nan"),
    ("the probabilities, not their log",
     lambda z: torch.softmax(z, dim=-1), "probabilities themselves"),
    ("normalised over the batch",
     lambda z: (lambda s: s - s.exp().sum(0, keepdim=True).log())(
         z - z.max(dim=0, keepdim=True).values), "each column"),
    ("the shift forgotten in the result",
     lambda z: (lambda m: z - (z - m).exp().sum(-1, keepdim=True).log())(
         z.max(dim=-1, keepdim=True).values), "differs from log softmax"),
    ("changes the logits in place",
     lambda z: z.sub_(z.max(dim=-1, keepdim=True).values).sub_(
         z.exp().sum(-1, keepdim=True).log()), "changed the logits"),
    ("computes in float32", lambda z: torch.log_softmax(z.float(), dim=-1), "float64"),
])
def test_log_softmax_mistakes_are_named(mistake, answer, fragment):
    fails("02.1", answer, fragment)


# --- 02.2 the gradient of the cross-entropy ----------------------------------------------------


def test_cross_entropy_grad_by_one_hot_passes():
    def cross_entropy_grad(z, y):
        return (torch.softmax(z, dim=1) - F.one_hot(y, z.shape[1]).to(z.dtype)) / len(y)

    passes("02.2", cross_entropy_grad)


def _onehot(z, y):
    return F.one_hot(y, z.shape[1]).to(z.dtype)


@pytest.mark.parametrize("mistake, answer, fragment", [
    ("the sum, not the mean", lambda z, y: torch.softmax(z, 1) - _onehot(z, y), "times too large"),
    ("the sign reversed", lambda z, y: (_onehot(z, y) - torch.softmax(z, 1)) / len(y),
     "opposite sign"),
    ("no one-hot subtracted", lambda z, y: torch.softmax(z, 1) / len(y), "sum to 0"),
    ("softmax over the batch", lambda z, y: (torch.softmax(z, 0) - _onehot(z, y)) / len(y),
     "sum to 0"),
    ("the naive softmax", lambda z, y: (z.exp() / z.exp().sum(1, keepdim=True) - _onehot(z, y))
     / len(y), "inf or nan"),
    ("divided by the number of classes",
     lambda z, y: (torch.softmax(z, 1) - _onehot(z, y)) / z.shape[1], "differs from autograd"),
])
def test_cross_entropy_grad_mistakes_are_named(mistake, answer, fragment):
    fails("02.2", answer, fragment)


# --- 02.3 one minibatch step of SGD ------------------------------------------------------------


def test_sgd_step_with_autograd_grad_passes():
    def sgd_step(model, x, y, lr):
        params = [p for p in model.parameters() if p.requires_grad]
        loss = F.cross_entropy(model(x), y)
        grads = torch.autograd.grad(loss, params)     # never touches .grad
        with torch.no_grad():
            for p, g in zip(params, grads, strict=True):
                p.sub_(lr * g)
        return float(loss.detach())

    passes("02.3", sgd_step)


def _step(model, x, y, lr, *, zero=True, sign=-1, after=False, item=True, rebind=False,
          frozen_too=False):
    if zero:
        model.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is None:
                if frozen_too:
                    p += 0.01
                continue
            if rebind:
                p = p + sign * lr * p.grad            # noqa: PLW2901 (the mistake under test)
            else:
                p += sign * lr * p.grad
        if after:
            loss = F.cross_entropy(model(x), y)
    return loss.item() if item else loss


@pytest.mark.parametrize("mistake, options, fragment", [
    ("old gradients not cleared", {"zero": False}, "earlier computation"),
    ("steps uphill", {"sign": 1}, "loss on the batch rose"),
    ("returns the loss after the step", {"after": True}, "after the update"),
    ("returns a tensor", {"item": False}, "Python float"),
    ("rebinds instead of updating in place", {"rebind": True}, "unchanged"),
    ("moves the frozen parameter", {"frozen_too": True}, "requires_grad=False"),
])
def test_sgd_step_mistakes_are_named(mistake, options, fragment):
    fails("02.3", lambda model, x, y, lr: _step(model, x, y, lr, **options), fragment)


def test_sgd_step_that_clears_gradients_only_after_the_first_step_is_caught():
    def sgd_step(model, x, y, lr):                   # backward, step, then zero_grad: the first
        loss = F.cross_entropy(model(x), y)          # step still sees the stale gradients
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                if p.grad is not None:
                    p -= lr * p.grad
        model.zero_grad()
        return loss.item()

    fails("02.3", sgd_step, "earlier computation")
