"""Checks for lesson 03's exercises: measuring a classifier, sampling data, reading its mistakes.

The checks build a tiny untrained model and random tensors from fixed seeds (leaving the global
random state alone) and compare the student's function with scikit-learn or ftcore on them.
"""

from __future__ import annotations

import torch
from sklearn.metrics import accuracy_score

from ..models import MLP
from ..train import confident_mistakes
from .checks import Exercise, expect, unchanged

# --- 03.1 accuracy, measured in evaluation mode ------------------------------------------------

def _model_in_training_mode() -> MLP:
    """A tiny classifier with heavy dropout, left in training mode (as ``fit`` leaves a model):
    its training-mode outputs are not its answers."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return MLP(4, hidden=(32,), dropout=0.5).train()


def _check_accuracy(accuracy) -> None:
    model = _model_in_training_mode()
    g = torch.Generator().manual_seed(2)
    images = torch.rand(250, 1, 28, 28, generator=g)
    with torch.no_grad():
        predicted = model.eval()(images).argmax(dim=1)  # its real answers
    model.train()  # as fit left it
    wrong = torch.rand(250, generator=g) < 0.35
    labels = torch.where(wrong, (predicted + 1) % 4, predicted)
    true = accuracy_score(labels.numpy(), predicted.numpy())
    with torch.random.fork_rng(devices=[]):  # dropout draws from the global generator
        torch.manual_seed(3)
        result = accuracy(model, images, labels, batch_size=100)
    result = float(result.item() if isinstance(result, torch.Tensor) else result)
    expect(0 <= result <= 1, f"your accuracy is {result:g}: it should be the fraction of "
                             f"images classified correctly, between 0 and 1")
    first_batches = [accuracy_score(labels[:n].numpy(), predicted[:n].numpy()) for n in (100, 200)]
    expect(not any(abs(result - value) < 1e-6 for value in first_batches),
           "your accuracy counts only some of the images: with 250 images and batch_size=100 "
           "there are three batches, and the last one is smaller")
    batch_means = sum(accuracy_score(y.numpy(), p.numpy())
                      for y, p in zip(labels.split(100), predicted.split(100), strict=True)) / 3
    expect(abs(result - batch_means) > 1e-6,
           "you average the accuracies of the batches, but the last batch is smaller: count the "
           "correct answers over all images, then divide once")
    expect(abs(result - true) < 1e-6,
           "your accuracy does not match the model's answers in evaluation mode: a model fresh "
           "from training still has dropout (and batch norm) behaving as in training")


# --- 03.2 a stratified sample ------------------------------------------------------------------

def _shuffled_labels(counts: list[int], seed: int) -> torch.Tensor:
    """Labels with ``counts[k]`` examples of class k, in random order."""
    labels = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))]


def _positions(sample_per_class, labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    result = sample_per_class(labels.clone(), n, seed=seed)
    integer = isinstance(result, torch.Tensor) and result.dtype in (torch.int32, torch.int64)
    expect(integer and result.dim() == 1, "return a 1-D tensor of integer positions into labels")
    expect(len(result) == 0 or (result.min() >= 0 and result.max() < len(labels)),
           "some of your positions are outside 0..len(labels)-1")
    return result.long()


def _check_sample_per_class(sample_per_class) -> None:
    counts, n = [12, 30, 7, 20, 15], 5
    labels = _shuffled_labels(counts, seed=0)
    state = torch.random.get_rng_state()
    chosen = _positions(sample_per_class, labels, n, seed=0)
    touched = not torch.equal(state, torch.random.get_rng_state())
    expect(len(chosen.unique()) == len(chosen),
           "the same example is chosen twice: sample without replacement")
    per_class = torch.bincount(labels[chosen], minlength=len(counts))
    expect((per_class == n).all(),
           f"asked for {n} examples per class, your sample has {per_class.tolist()} of classes "
           f"0..{len(counts) - 1}: draw from each class separately")
    again = _positions(sample_per_class, labels, n, seed=0)
    expect(torch.equal(chosen.sort().values, again.sort().values),
           "two calls with the same seed chose different examples: the sample should depend on "
           "seed alone (use a torch.Generator seeded with it, not the global random state)")
    samples = [set(_positions(sample_per_class, labels, n, seed=s).tolist()) for s in range(1, 4)]
    first = set().union(*[set((labels == k).nonzero().squeeze(1)[:n].tolist())
                          for k in range(len(counts))])
    expect(not all(s == first for s in samples),
           "you always take the first examples of each class: within a class, choose at random")
    expect(len({frozenset(s) for s in samples + [set(chosen.tolist())]}) > 1,
           "different seeds give the same sample: the seed should change which examples are "
           "chosen")
    expect(not touched, "your function changed the global random state (torch.manual_seed, or "
                        "drawing from it): give the sample its own torch.Generator, so the rest "
                        "of the program's randomness is left alone")
    smallest = min(counts)
    try:
        sample_per_class(labels.clone(), smallest + 1, seed=0)
    except ValueError:
        return
    expect(False, f"asking for {smallest + 1} examples per class when one class has only "
                  f"{smallest} should raise ValueError: returning a smaller, unbalanced sample "
                  f"would silently bias the experiment")


# --- 03.3 the most confident mistakes ----------------------------------------------------------

def _check_most_confident_mistakes(most_confident_mistakes) -> None:
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(80, 5, generator=g)
    predicted = logits.argmax(dim=1)
    cases = {"many mistakes": (torch.randint(0, 5, (80,), generator=g), 6)}
    few = predicted.clone()
    few[[3, 17, 42]] = (few[[3, 17, 42]] + 2) % 5
    cases["3 mistakes, k=10"] = (few, 10)
    for name, (labels, k) in cases.items():
        result = unchanged(most_confident_mistakes, logits, labels, k,
                           what="`logits` or `labels`")
        expect(isinstance(result, torch.Tensor) and result.dim() == 1,
               "return a 1-D tensor of positions (indices into logits)")
        expected = confident_mistakes(logits, labels, k)
        result = result.long()
        expect(len(result) == 0 or (result.min() >= 0 and result.max() < len(labels)),
               "some of your positions are outside 0..N-1")
        expect((predicted[result] != labels[result]).all(),
               f"({name}) one of your positions is a correct prediction: keep only the "
               f"mistakes (there may be fewer than k of them)")
        expect(len(result) == len(expected),
               f"({name}) you returned {len(result)} positions: return k mistakes, or every "
               f"mistake if there are fewer than k")
        expect(set(result.tolist()) == set(expected.tolist()),
               f"({name}) these are not the most confident mistakes: rank the mistakes by the "
               f"probability (softmax) the model gave to the class it predicted")
        expect(torch.equal(result, expected),
               f"({name}) the right mistakes, in the wrong order: most confident first")


EXERCISES: list[Exercise] = [
    Exercise(
        id="03.1",
        title="Accuracy, measured in evaluation mode",
        hint="dropout and BatchNorm behave differently while training: which mode should a "
             "measurement use? Count the correct predictions over all the batches",
        test=_check_accuracy,
    ),
    Exercise(
        id="03.2",
        title="A stratified sample",
        hint="use a torch.Generator made from `seed` (never the global one) and sample each class"
             " on its own, without replacement",
        test=_check_sample_per_class,
    ),
    Exercise(
        id="03.3",
        title="The most confident mistakes",
        hint="a mistake is a row whose predicted class differs from its label; its confidence is "
             "the softmax probability of the predicted class",
        test=_check_most_confident_mistakes,
    ),
]
