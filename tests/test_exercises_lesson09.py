"""Lesson 09's exercise checks: a correct answer written another way passes, and the mistakes a
student would plausibly make fail with a message that names the mistake."""

from __future__ import annotations

import random
from collections import deque

import torch
from helpers import fails, passes

# --- 08.1: average accuracy, forgetting, backward transfer --------------------------------------

def metrics_with_loops(R, best_rows=None, transfer_tasks=None, average_row=-1):
    """Correct by default, written with plain loops; the keywords make the classic mistakes."""
    R = R.tolist()
    T = len(R)
    average = sum(R[average_row]) / T if average_row is not None else sum(
        R[i][i] for i in range(T)) / T
    rows = T - 1 if best_rows is None else best_rows
    forgot = sum(max(R[i][j] for i in range(rows)) - R[T - 1][j] for j in range(T - 1)) / (T - 1)
    tasks = T - 1 if transfer_tasks is None else transfer_tasks
    transfer = sum(R[T - 1][j] - R[j][j] for j in range(tasks)) / tasks
    return average, forgot, transfer


def test_metrics_correct_answer_passes():
    passes("09.1", metrics_with_loops)


def test_metrics_average_of_the_diagonal_fails():
    fails("09.1", lambda R: metrics_with_loops(R, average_row=None), "mean of the diagonal")


def test_metrics_best_over_every_row_fails():
    fails("09.1", lambda R: metrics_with_loops(R, best_rows=len(R)), "final one included")


def test_metrics_last_task_in_backward_transfer_fails():
    fails("09.1", lambda R: metrics_with_loops(R, transfer_tasks=len(R)), "last task is included")


def test_metrics_sign_of_forgetting_fails():
    def answer(R):
        average, forgot, transfer = metrics_with_loops(R)
        return average, -forgot, transfer

    fails("09.1", answer, "sign is flipped")


def test_metrics_transposed_fails():
    fails("09.1", lambda R: metrics_with_loops(R.T), "transposed")


# --- 08.2: reservoir sampling -------------------------------------------------------------------

def reservoir_by_coin(stream, k, rng):
    """Correct, differently: a coin with chance k / n decides; then a uniform slot is evicted."""
    kept = []
    for n, item in enumerate(stream, start=1):
        if len(kept) < k:
            kept.append(item)
        elif rng.random() < k / n:
            kept[rng.randrange(k)] = item
    return kept


def test_reservoir_correct_answer_passes():
    passes("09.2", reservoir_by_coin)


def test_reservoir_first_k_fails():
    def answer(stream, k, rng):
        kept = []
        for item in stream:
            if len(kept) < k:
                kept.append(item)
        return kept

    fails("09.2", answer, "early items are favoured")


def test_reservoir_last_k_fails():
    fails("09.2", lambda stream, k, rng: list(deque(stream, maxlen=k)), "late items are favoured")


def test_reservoir_off_by_one_fails():
    def answer(stream, k, rng):
        kept = []
        for seen, item in enumerate(stream):  # counts from 0: new items enter too often
            if seen < k:
                kept.append(item)
            else:
                j = rng.randrange(seen)
                if j < k:
                    kept[j] = item
        return kept

    fails("09.2", answer, "late items are favoured")


def test_reservoir_global_random_fails():
    def answer(stream, k, rng):
        return reservoir_by_coin(stream, k, random)  # the module, not the rng given

    fails("09.2", answer, "the `rng` you are given")


def test_reservoir_needs_no_length():
    fails("09.2", lambda stream, k, rng: rng.sample(range(len(stream)), k), "length of the stream")


# --- 08.3: the EWC penalty ----------------------------------------------------------------------

def penalty_by_loop(model, fisher, anchor, lam):
    """Correct, differently: loop over the model's parameters, skipping those fisher leaves out."""
    total = torch.zeros(())
    for name, weight in model.named_parameters():
        if name in fisher:
            total = total + torch.sum(fisher[name] * (weight - anchor[name]) ** 2)
    return 0.5 * lam * total


def test_ewc_correct_answer_passes():
    passes("09.3", penalty_by_loop)


def test_ewc_without_the_half_fails():
    fails("09.3", lambda *args: 2 * penalty_by_loop(*args), "twice")


def test_ewc_as_a_python_number_fails():
    fails("09.3", lambda *args: penalty_by_loop(*args).item(), "return a tensor")


def test_ewc_detached_fails():
    def answer(model, fisher, anchor, lam):
        weights = {name: p.detach() for name, p in model.named_parameters()}
        return lam / 2 * sum((f * (weights[n] - anchor[n]) ** 2).sum() for n, f in fisher.items())

    fails("09.3", answer, "no gradient")


def test_ewc_squared_fisher_fails():
    def answer(model, fisher, anchor, lam):
        return penalty_by_loop(model, {n: f ** 2 for n, f in fisher.items()}, anchor, lam)

    fails("09.3", answer, "square of the Fisher")


def test_ewc_every_parameter_fails():
    def answer(model, fisher, anchor, lam):
        every = {n: fisher.get(n, torch.ones_like(p)) for n, p in model.named_parameters()}
        return penalty_by_loop(model, every, anchor, lam)

    fails("09.3", answer, "does not name")


def test_ewc_wrong_gradient_fails():
    def answer(model, fisher, anchor, lam):  # the right value, but half of it cannot move
        value = penalty_by_loop(model, fisher, anchor, lam)
        return (value + value.detach()) / 2

    fails("09.3", answer, "wrong gradient")
