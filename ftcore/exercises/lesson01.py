"""Checks for lesson 01's exercises: gradients, momentum, and the edge of stability.

Every check builds its own random problem in float64 (from a fixed seed, leaving the global random
state alone) and compares the student's function with an independent reference: autograd,
``torch.optim.SGD``, or gradient descent actually run at the learning rate the student gives.
"""

from __future__ import annotations

import math

import torch

from .checks import Exercise, expect

DTYPE = torch.float64


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _as_float(value, what: str) -> float:
    """``value`` (a number or a one-element tensor) as a float, or a Mistake naming ``what``."""
    if isinstance(value, torch.Tensor):
        expect(value.numel() == 1, f"{what} should be a single number, got a tensor of shape "
                                   f"{tuple(value.shape)}")
        expect(not value.is_complex(), f"{what} is complex: the Hessian is symmetric, so its "
                                       "eigenvalues are real (torch.linalg has a function for "
                                       "symmetric matrices)")
        value = value.item()
    expect(isinstance(value, (int, float)) and math.isfinite(value),
           f"{what} should be a finite number, got {value!r}")
    return float(value)


# --- 01.1 a numerical gradient -----------------------------------------------------------------

def _smooth_function(shape: tuple[int, ...], seed: int):
    """A smooth, non-quadratic f: tensor of ``shape`` -> scalar, with coupled coordinates."""
    g = _generator(seed)
    n = math.prod(shape)
    a = torch.randn(shape, generator=g, dtype=DTYPE)
    coupling = torch.randn(n, n, generator=g, dtype=DTYPE) / n

    def f(theta: torch.Tensor) -> torch.Tensor:
        flat = theta.reshape(-1)
        return (a * theta.sin()).sum() + 0.3 * (flat ** 4).sum() + flat @ coupling @ flat.tanh()

    return f


def _autograd_gradient(f, theta: torch.Tensor) -> torch.Tensor:
    theta = theta.detach().clone().requires_grad_(True)
    f(theta).backward()
    return theta.grad


def _numerical(numerical_gradient, f, theta: torch.Tensor, h: float) -> torch.Tensor:
    """The student's gradient of ``f`` at ``theta``, checked for type, shape and side effects."""
    kept = theta.clone()
    result = numerical_gradient(f, theta, h=h)
    expect(torch.equal(theta, kept) or torch.allclose(theta, kept, rtol=0, atol=1e-12),
           "your function changed theta: perturb a copy (or put every coordinate back) so the "
           "caller's parameters are left as they were")
    expect(isinstance(result, torch.Tensor), f"return a tensor, not a {type(result).__name__}")
    expect(result.shape == theta.shape, f"for theta of shape {tuple(theta.shape)} the gradient "
                                        f"should have the same shape, not {tuple(result.shape)}")
    return result.detach().to(DTYPE)


def _check_numerical_gradient(numerical_gradient) -> None:
    h = 1e-4
    # A function of the first coordinate only: every other entry of its gradient is 0.
    result = _numerical(numerical_gradient, lambda theta: 3 * theta.reshape(-1)[0].sin(),
                        torch.ones(4, dtype=DTYPE), h)
    expect(torch.allclose(result[1:], torch.zeros(3, dtype=DTYPE), atol=1e-9),
           "for a function of the first coordinate only, the other entries of your gradient are "
           "not 0: entry i should perturb coordinate i alone")
    for case, shape in enumerate([(3,), (2, 3)]):
        f = _smooth_function(shape, seed=case)
        theta = torch.randn(shape, generator=_generator(10 + case), dtype=DTYPE)
        result = _numerical(numerical_gradient, f, theta, h)
        exact = _autograd_gradient(f, theta)
        scale = exact.norm()
        expect(min((result - 2 * exact).norm(), (2 * result - exact).norm()) > 1e-3 * scale,
               "your gradient is off from autograd's by a factor of 2: compare the distance "
               "between the two points you evaluate with what you divide by")
        expect((result + exact).norm() > 1e-3 * scale,
               "your gradient points the opposite way to autograd's: check the order of the "
               "two evaluations in the difference")
        expect(torch.allclose(result, exact, rtol=1e-6, atol=1e-7),
               "your gradient differs from autograd's by more than a central difference should "
               "with h = 1e-4 (its error shrinks like h², a one-sided difference's only like h): "
               "step theta both ways along each coordinate")


# --- 01.2 one step of SGD with momentum --------------------------------------------------------

def _quadratic_plus_wave(shape: tuple[int, ...], seed: int):
    g = _generator(seed)
    curvature = torch.rand(shape, generator=g, dtype=DTYPE) * 2 + 0.5
    return lambda theta: 0.5 * (curvature * theta ** 2).sum() + theta.cos().sum()


def _check_momentum_step(momentum_step) -> None:
    shape, steps = (3, 4), 6
    for momentum, lr in ((0.9, 0.05), (0.5, 0.2), (0.0, 0.1)):
        loss = _quadratic_plus_wave(shape, seed=int(10 * momentum))
        start = torch.randn(shape, generator=_generator(1), dtype=DTYPE)
        reference = torch.nn.Parameter(start.clone())
        optimizer = torch.optim.SGD([reference], lr=lr, momentum=momentum)
        theta, velocity = start.clone(), torch.zeros(shape, dtype=DTYPE)
        for step in range(1, steps + 1):
            grad = _autograd_gradient(loss, theta)
            optimizer.zero_grad()
            loss(reference).backward()
            optimizer.step()
            result = momentum_step(theta.clone(), grad.clone(), velocity.clone(), lr, momentum)
            expect(isinstance(result, tuple) and len(result) == 2,
                   "return a pair (new theta, new velocity)")
            theta, velocity = (torch.as_tensor(t, dtype=DTYPE).detach() for t in result)
            expect(theta.shape == reference.shape and velocity.shape == reference.shape,
                   f"the new theta and velocity should have theta's shape {shape}")
            if step == 1:
                expect(torch.allclose(theta, reference.detach(), rtol=1e-10, atol=1e-12),
                       f"your first step (momentum={momentum}, from zero velocity) already "
                       f"differs from torch.optim.SGD's: check the sign and size of the update")
            else:
                expect(torch.allclose(theta, reference.detach(), rtol=1e-10, atol=1e-12),
                       f"your first step matches torch.optim.SGD, but after {step} steps "
                       f"(momentum={momentum}) your parameters differ from momentum SGD's: is "
                       f"the new velocity built from the previous one, and is it the velocity "
                       f"you step with and return?")
            if momentum:
                buffer = optimizer.state[reference]["momentum_buffer"]
                expect(torch.allclose(velocity, buffer, rtol=1e-10, atol=1e-12),
                       "your parameters follow torch.optim.SGD, but the velocity you return is "
                       "not the lesson's v (a running sum of gradients, before it is multiplied "
                       "by the learning rate)")


# --- 01.3 the largest stable learning rate -----------------------------------------------------

def _random_hessian(size: int, seed: int) -> torch.Tensor:
    """A symmetric positive definite (size, size) matrix with eigenvalues from 0.1 to 30, in a
    random basis (so its diagonal does not show them)."""
    g = _generator(seed)
    basis, _ = torch.linalg.qr(torch.randn(size, size, generator=g, dtype=DTYPE))
    eigenvalues = torch.logspace(-1, math.log10(30), size, dtype=DTYPE)
    eigenvalues = eigenvalues[torch.randperm(size, generator=g)]
    return basis @ torch.diag(eigenvalues) @ basis.T


def _grows(H: torch.Tensor, lr: float, steps: int = 400) -> float:
    """How much gradient descent on L(e) = e^T H e / 2 grows the error e from a random start."""
    e0 = torch.randn(len(H), generator=_generator(7), dtype=DTYPE)
    e = e0
    for _ in range(steps):
        e = e - lr * (H @ e)
    return (e.norm() / e0.norm()).item()


def _check_critical_learning_rate(critical_learning_rate) -> None:
    for size, seed in ((2, 0), (5, 1), (8, 2)):
        H = _random_hessian(size, seed)
        lr = _as_float(critical_learning_rate(H.clone()), "your learning rate")
        expect(lr > 0, f"your learning rate for a {size}x{size} Hessian is {lr:g}, not positive")
        expect(_grows(H, 0.97 * lr) < 1,
               f"gradient descent diverges on a {size}x{size} quadratic at a learning rate 3% "
               f"below yours: your rate is past the edge of stability (which eigenvalue of the "
               f"Hessian sets the edge?)")
        expect(_grows(H, 1.03 * lr) > 1e3,
               f"gradient descent still converges on a {size}x{size} quadratic at a learning "
               f"rate 3% above yours: your rate is safe but not the largest one; the edge lies "
               f"further out")


EXERCISES: list[Exercise] = [
    Exercise(
        id="01.1",
        title="A numerical gradient",
        hint="perturb one coordinate at a time, in both directions (the central difference), and "
             "leave theta as you found it",
        test=_check_numerical_gradient,
    ),
    Exercise(
        id="01.2",
        title="One step of SGD with momentum",
        hint="first update the velocity from the old one and the gradient (v <- beta v + g), "
             "then step theta against the new velocity, scaled by the learning rate",
        test=_check_momentum_step,
    ),
    Exercise(
        id="01.3",
        title="The largest stable learning rate",
        hint="each step multiplies the error along an eigenvector by (1 - eta * lambda): which "
             "eigenvalue limits eta, and where does that factor reach size 1?",
        test=_check_critical_learning_rate,
    ),
]
