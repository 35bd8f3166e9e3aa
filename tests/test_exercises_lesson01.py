"""Lesson 01's exercise checks: a correct answer written another way passes, and each typical
mistake fails with a message that points at it (without the answer)."""

from __future__ import annotations

import pytest
import torch
from helpers import fails, passes

# --- 01.1 a numerical gradient -----------------------------------------------------------------

def _differences(f, theta, h, forward=False):
    """f at theta + h e_i and at theta - h e_i (or theta itself, forward=True), per coordinate."""
    steps = torch.eye(theta.numel(), dtype=theta.dtype).reshape(-1, *theta.shape) * h
    up = torch.stack([f(theta + step) for step in steps])
    down = torch.stack([f(theta) if forward else f(theta - step) for step in steps])
    return up.reshape(theta.shape), down.reshape(theta.shape)


def test_numerical_gradient_vectorised_over_a_basis_passes():
    def numerical_gradient(f, theta, h=1e-5):
        up, down = _differences(f, theta, h)
        return (up - down) / (2 * h)

    passes("01.1", numerical_gradient)


def _perturb_in_place(f, theta, h=1e-5):  # forgets to put the coordinate back
    grad, flat = torch.zeros_like(theta), theta.view(-1)
    for i in range(theta.numel()):
        flat[i] += h
        up = f(theta)
        flat[i] -= 2 * h
        grad.view(-1)[i] = (up - f(theta)) / (2 * h)
    return grad


@pytest.mark.parametrize("mistake, answer, fragment", [
    ("one-sided difference",
     lambda f, t, h=1e-5: (lambda up, same: (up - same) / h)(*_differences(f, t, h, forward=True)),
     "one-sided difference's only like h"),
    ("divides by h",
     lambda f, t, h=1e-5: (lambda up, down: (up - down) / h)(*_differences(f, t, h)),
     "factor of 2"),
    ("reversed difference",
     lambda f, t, h=1e-5: (lambda up, down: (down - up) / (2 * h))(*_differences(f, t, h)),
     "opposite way"),
    ("moves every coordinate at once",
     lambda f, t, h=1e-5: torch.full_like(t, ((f(t + h) - f(t - h)) / (2 * h)).item()),
     "perturb coordinate i alone"),
    ("changes theta in place", _perturb_in_place, "changed theta"),
])
def test_numerical_gradient_mistakes_are_named(mistake, answer, fragment):
    fails("01.1", answer, fragment)


# --- 01.2 one step of SGD with momentum --------------------------------------------------------

def test_momentum_step_in_place_passes():
    def momentum_step(theta, grad, velocity, lr, momentum):
        velocity.mul_(momentum).add_(grad)
        theta.sub_(lr * velocity)
        return theta, velocity

    passes("01.2", momentum_step)


@pytest.mark.parametrize("mistake, answer, fragment", [
    ("no momentum at all", lambda t, g, v, lr, m: (t - lr * g, g), "after 2 steps"),
    ("velocity not returned",
     lambda t, g, v, lr, m: (t - lr * (m * v + g), v), "velocity you return"),
    ("velocity scaled by the learning rate (another convention)",
     lambda t, g, v, lr, m: (t + (m * v - lr * g), m * v - lr * g), "velocity you return"),
    ("dampened velocity (an average, not a sum)",
     lambda t, g, v, lr, m: (t - lr * (m * v + (1 - m) * g), m * v + (1 - m) * g),
     "first step .* already differs"),
    ("steps uphill", lambda t, g, v, lr, m: (t + lr * (m * v + g), m * v + g),
     "sign and size of the update"),
])
def test_momentum_step_mistakes_are_named(mistake, answer, fragment):
    fails("01.2", answer, fragment)


# --- 01.3 the largest stable learning rate -----------------------------------------------------

def test_critical_learning_rate_from_the_spectral_norm_passes():
    passes("01.3", lambda H: 2 / torch.linalg.matrix_norm(H, ord=2))


@pytest.mark.parametrize("mistake, answer, fragment", [
    ("one over lambda_max", lambda H: 1 / torch.linalg.eigvalsh(H)[-1], "still converges"),
    ("the first eigenvalue of eigvalsh (the smallest)",
     lambda H: 2 / torch.linalg.eigvalsh(H)[0], "diverges .* below yours"),
    ("the largest diagonal entry", lambda H: 2 / H.diagonal().max(), "diverges"),
    ("a complex eigenvalue", lambda H: 2 / torch.linalg.eigvals(H)[0], "complex"),
])
def test_critical_learning_rate_mistakes_are_named(mistake, answer, fragment):
    fails("01.3", answer, fragment)
