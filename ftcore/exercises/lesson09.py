"""Checks for lesson 09's exercises: the accuracy matrix's metrics, reservoir sampling, EWC."""

from __future__ import annotations

import random

import torch
from torch import nn

from ..continual import average_accuracy, backward_transfer, forgetting
from .checks import Exercise, Mistake, expect

# --- 08.1: average accuracy, forgetting and backward transfer ---------------------------------


def _metrics(R: torch.Tensor) -> tuple[float, float, float]:
    return average_accuracy(R), forgetting(R), backward_transfer(R)


def _close(a: float, b: float) -> bool:
    return abs(a - b) < 1e-6


def _diagnose_average(R: torch.Tensor, value: float) -> str:
    wrong = {"the mean of the diagonal (each task just after it was learned: that is "
             "plasticity)": R.diagonal().mean(),
             "the mean of the whole matrix": R.mean(),
             "the mean of the last column (the last task, tested after each task)": R[:, -1].mean()}
    for what, number in wrong.items():
        if _close(value, number.item()):
            return (f"your average accuracy is {what}. A is about the model at the end of "
                    f"the sequence")
    return "your average accuracy is off: which row of R holds the model after the last task?"


def _diagnose_forgetting(R: torch.Tensor, value: float) -> str:
    T = len(R)
    old = R[-1, :-1]
    wrong = {
        "the best accuracy is taken over every row, the final one included, so no task can "
        "ever end above its best and negative forgetting disappears":
            (R.max(dim=0).values[:-1] - old).mean(),
        "the last task is included in the average; it had no chance to be forgotten yet":
            (R[:-1].max(dim=0).values - R[-1]).mean() if T > 1 else None,
        "the sign is flipped: forgetting is positive when a task ends below its best":
            (old - R[:-1, :-1].max(dim=0).values).mean(),
        "each task is compared with its accuracy just after it was learned (the diagonal): "
        "that is backward transfer, up to sign. Forgetting compares with its *best*":
            (R.diagonal()[:-1] - old).mean(),
    }
    for what, number in wrong.items():
        if number is not None and _close(value, number.item()):
            return f"your forgetting is off: {what}"
    return ("your forgetting is off: for each task but the last, take its best accuracy before "
            "the final task minus its final accuracy, then average")


def _diagnose_transfer(R: torch.Tensor, value: float) -> str:
    diff = R[-1] - R.diagonal()
    wrong = {
        "the sign is flipped: BWT is negative when learning later tasks hurt the earlier ones":
            -diff[:-1].mean(),
        "the last task is included (its term is always 0, so it shrinks the average)":
            diff.mean(),
        "each task is compared with the first row instead of with its accuracy just after it "
        "was learned": (R[-1, :-1] - R[0, :-1]).mean(),
    }
    for what, number in wrong.items():
        if _close(value, number.item()):
            return f"your backward transfer is off: {what}"
    return ("your backward transfer is off: for each task but the last, its final accuracy "
            "minus its accuracy just after it was learned, then average")


def _check_metrics(accuracy_metrics) -> None:
    generator = torch.Generator().manual_seed(8)
    matrices = [torch.rand(T, T, generator=generator, dtype=torch.float64) for T in (4, 2, 5, 3)]
    for R in matrices:
        result = accuracy_metrics(R.clone())
        expect(isinstance(result, tuple | list) and len(result) == 3,
               f"return a tuple of three numbers (average accuracy, forgetting, backward "
               f"transfer), got {type(result).__name__} {result!r}")
        values = [float(v) for v in result]
        expected = _metrics(R)
        T = len(R)
        if all(_close(v, e) for v, e in zip(values, expected, strict=True)):
            continue
        transposed = _metrics(R.T)
        expect(T == 1 or not all(_close(v, e) for v, e in zip(values, transposed, strict=True)),
               "your metrics read R transposed: R[i, j] is the accuracy on task j after "
               "training on task i, so row i is a snapshot of the model after task i")
        expect(_close(values[0], expected[0]), _diagnose_average(R, values[0]))
        expect(_close(values[1], expected[1]), _diagnose_forgetting(R, values[1]))
        expect(_close(values[2], expected[2]), _diagnose_transfer(R, values[2]))


# --- 08.2: reservoir sampling -----------------------------------------------------------------

STREAM, KEEP, TRIALS = 10, 2, 4000


def _check_reservoir(reservoir_sample) -> None:
    def sample(n: int, k: int, seed: int) -> list:
        try:
            kept = list(reservoir_sample(iter(range(n)), k, random.Random(seed)))
        except TypeError as error:
            if "len()" not in str(error):
                raise
            raise Mistake(f"your code asked for the length of the stream ({error}): a stream "
                          "is an iterator whose length is unknown until it ends; go through "
                          "it once, counting the items as they come") from None
        expect(all(isinstance(item, int) and 0 <= item < n for item in kept),
               "the sample holds things that were not items of the stream: keep the items "
               "themselves")
        expect(len(set(kept)) == len(kept), f"the sample holds an item twice: {sorted(kept)}")
        return kept

    short = sample(3, 5, seed=0)
    expect(sorted(short) == [0, 1, 2],
           f"from a stream of 3 items with room for 5 your sample is {sorted(short)}: while "
           f"there is room, every item should be kept")
    # a long stream and a large sample: two runs on the module's random numbers coincide by
    # chance about once in 10^13 (with 10 items and 2 kept it was about once in 45)
    expect(sample(100, 10, seed=1) == sample(100, 10, seed=1),
           "two runs with the same rng gave different samples: draw every random number from "
           "the `rng` you are given (rng.random(), rng.randrange(...)), not from the module "
           "`random` or numpy")
    counts = [0] * STREAM
    for trial in range(TRIALS):
        kept = sample(STREAM, KEEP, seed=1000 + trial)
        expect(len(kept) == KEEP, f"from a stream of {STREAM} items with room for {KEEP} your "
                                  f"sample holds {len(kept)}")
        for item in kept:
            counts[item] += 1
    share = [count / TRIALS for count in counts]
    fair = KEEP / STREAM
    if max(abs(s - fair) for s in share) < 0.04:
        return
    half = STREAM // 2
    early, late = sum(share[:half]) / half, sum(share[half:]) / (STREAM - half)
    kept_how = ", ".join(f"{s:.0%}" for s in share)
    observed = (f"over {TRIALS} streams of {STREAM} items (room for {KEEP}), items 0 to "
                f"{STREAM - 1} were kept in {kept_how} of the runs respectively")
    expect(abs(early - late) < 0.04,
           f"{observed}: {'early' if early > late else 'late'} items are favoured. Every item "
           f"must end up in the sample equally often, however early or late it came")
    expect(False, f"{observed}; every item should be kept equally often. Check the chance with "
                  f"which a new item enters the sample")


# --- 08.3: the EWC penalty --------------------------------------------------------------------

def _check_ewc(ewc_penalty) -> None:
    generator = torch.Generator().manual_seed(5)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    params = dict(model.named_parameters())
    # the anchor holds every weight; the Fisher leaves one parameter out (it is not protected)
    anchor = {name: (p + 0.5 * torch.randn(p.shape, generator=generator)).detach()
              for name, p in params.items()}
    fisher = {name: torch.rand(p.shape, generator=generator)
              for name, p in params.items() if name != "2.bias"}
    lam = 3.0
    copies = [{k: v.clone() for k, v in d.items()} for d in (params, fisher, anchor)]

    result = ewc_penalty(model, fisher, anchor, lam)
    expect(isinstance(result, torch.Tensor),
           f"return a tensor, not a {type(result).__name__}: fit adds the penalty to the loss "
           f"and backpropagates through it")
    expect(result.numel() == 1, f"return a single number (a scalar tensor), got shape "
                                f"{tuple(result.shape)}: sum over every weight")
    for before, now, what in zip(copies, (params, fisher, anchor),
                                 ("the model's weights", "fisher", "anchor"), strict=True):
        expect(all(torch.equal(before[k], now[k].detach()) for k in before),
               f"your function changed {what} in place: it should only read them")
    expect(result.requires_grad,
           "the penalty carries no gradient back to the weights, so it cannot pull them "
           "anywhere: compute it from the model's parameters themselves, without .item(), "
           ".detach(), .data or torch.no_grad()")
    terms = {name: (f * (params[name] - anchor[name]) ** 2).sum() for name, f in fisher.items()}
    expected = lam / 2 * sum(term.item() for term in terms.values())
    value = result.item()
    if abs(value - expected) > 1e-4 * expected:
        ratio = value / expected
        expect(abs(ratio - 2) > 1e-3, "your penalty is twice the expected size: look at the "
                                      "constant in front of the sum")
        squared = lam / 2 * sum((f ** 2 * (params[n] - anchor[n]) ** 2).sum().item()
                                for n, f in fisher.items())
        expect(abs(value - squared) > 1e-4 * expected,
               "your penalty uses the square of the Fisher: F already is a mean of squared "
               "gradients, it weighs each squared distance as it is")
        everything = expected + lam / 2 * ((params["2.bias"] - anchor["2.bias"]) ** 2
                                           ).sum().item()
        expect(abs(value - everything) > 1e-4 * expected,
               "your penalty also pulls a parameter that `fisher` does not name: only the "
               "parameters in `fisher` are protected")
        expect(False, f"your penalty is {ratio:.3g} times the expected value on a small test "
                      f"model; compare your code with λ/2 Σ F_i (θ_i - θ*_i)² term by term "
                      f"(each weight's distance from its anchor, squared)")
    grads = torch.autograd.grad(result, list(params.values()), allow_unused=True)
    for (name, p), grad in zip(params.items(), grads, strict=True):
        want = (lam * fisher[name] * (p - anchor[name])).detach() if name in fisher \
            else torch.zeros_like(p)
        got = torch.zeros_like(p) if grad is None else grad
        expect(torch.allclose(got, want, rtol=1e-4, atol=1e-6),
               f"the penalty has the right value but the wrong gradient for {name!r}: is "
               f"part of it computed from a detached copy of the weights?")


EXERCISES: list[Exercise] = [
    Exercise(
        id="09.1", title="Average accuracy, forgetting and backward transfer",
        hint="Row i of R is the model after task i. A reads the last row; F and BWT compare the "
             "last row's first T - 1 entries with each column's best before the end (F) and with "
             "the diagonal (BWT), then average.",
        test=_check_metrics),
    Exercise(
        id="09.2", title="A reservoir-sampling buffer",
        hint="once the buffer is full, the n-th item (counting from 1) must be kept with "
             "probability k / n; which slot should it then replace?",
        test=_check_reservoir),
    Exercise(
        id="09.3", title="The EWC penalty",
        hint="Loop over fisher's names; dict(model.named_parameters()) gives the weights by name. "
             "Keep everything a tensor, so that backward() can reach the weights.",
        test=_check_ewc),
]
