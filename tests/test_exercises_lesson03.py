"""Lesson 03's exercise checks: a correct answer written another way passes, and each typical
mistake fails with a message that points at it (without the answer)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import fails, passes

# --- 03.1 accuracy, measured in evaluation mode ------------------------------------------------


def _predictions(model, images, batch_size, eval_mode=True):
    if eval_mode:
        model.eval()
    with torch.no_grad():
        return torch.cat([model(x).argmax(dim=1) for x in images.split(batch_size)])


def test_accuracy_from_all_predictions_passes():
    def accuracy(model, images, labels, batch_size=256):
        was_training = model.training  # and leaves the model as it found it
        correct = _predictions(model, images, batch_size) == labels
        model.train(was_training)
        return correct.double().mean()

    passes("03.1", accuracy)


def _mean_of_batches(model, images, labels, batch_size=256):
    model.eval()
    with torch.no_grad():
        scores = [(model(x).argmax(dim=1) == y).float().mean().item()
                  for x, y in zip(images.split(batch_size), labels.split(batch_size), strict=True)]
    return sum(scores) / len(scores)


def _first_batch(model, images, labels, batch_size=256):
    predicted = _predictions(model, images[:batch_size], batch_size)
    return (predicted == labels[:batch_size]).float().mean().item()


@pytest.mark.parametrize("mistake, answer, fragment", [
    ("forgets eval()",
     lambda m, x, y, batch_size=256: (_predictions(m, x, batch_size, eval_mode=False) == y)
     .float().mean().item(), "evaluation mode"),
    ("returns the count", lambda m, x, y, batch_size=256: int(
        (_predictions(m, x, batch_size) == y).sum()), "between 0 and 1"),
    ("only the first batch", _first_batch, "only some of the images"),
    ("averages the batches' accuracies", _mean_of_batches, "last batch is smaller"),
])
def test_accuracy_mistakes_are_named(mistake, answer, fragment):
    fails("03.1", answer, fragment)


# --- 03.2 a stratified sample ------------------------------------------------------------------

def test_sample_per_class_with_numpy_passes():
    def sample_per_class(labels, n, seed=0):
        rng, labels = np.random.default_rng(seed), labels.numpy()
        picked = []
        for k in range(labels.max() + 1):
            members = np.flatnonzero(labels == k)
            if len(members) < n:
                raise ValueError(f"class {k}: only {len(members)} examples")
            picked.extend(rng.choice(members, size=n, replace=False))
        return torch.tensor(sorted(picked))

    passes("03.2", sample_per_class)


def _per_class(labels, n, draw, check_size=True):
    """Positions chosen by ``draw(members) -> positions`` in every class."""
    picked = []
    for k in range(int(labels.max()) + 1):
        members = (labels == k).nonzero().squeeze(1)
        if check_size and len(members) < n:
            raise ValueError("too few")
        picked.append(draw(members))
    return torch.cat(picked)


def _shuffled(members, n, generator=None):
    return members[torch.randperm(len(members), generator=generator)[:n]]


def _first_n(labels, n, seed=0):
    return _per_class(labels, n, lambda members: members[:n])


def _global_generator(labels, n, seed=0):
    return _per_class(labels, n, lambda members: _shuffled(members, n))


def _seed_ignored(labels, n, seed=0):
    generator = torch.Generator().manual_seed(0)
    return _per_class(labels, n, lambda members: _shuffled(members, n, generator))


def _reseeding(labels, n, seed=0):
    torch.manual_seed(seed)  # reproducible, but it resets everyone else's randomness too
    return _global_generator(labels, n)


def _with_replacement(labels, n, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return _per_class(labels, n, lambda members: members[
        torch.randint(len(members), (n,), generator=generator)])


def _unstratified(labels, n, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(len(labels), generator=generator)[:n * (int(labels.max()) + 1)]


def _short_class_gives_fewer(labels, n, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return _per_class(labels, n, lambda members: _shuffled(members, n, generator),
                      check_size=False)


@pytest.mark.parametrize("answer, fragment", [
    (_first_n, "first examples of each class"),
    (_global_generator, "same seed chose different"),
    (_seed_ignored, "different seeds give the same sample"),
    (_reseeding, "changed the global random state"),
    (_with_replacement, "chosen twice"),
    (_unstratified, "draw from each class separately"),
    (_short_class_gives_fewer, "should raise ValueError"),
], ids=lambda value: value.__name__.strip("_") if callable(value) else "")
def test_sample_per_class_mistakes_are_named(answer, fragment):
    fails("03.2", answer, fragment)


# --- 03.3 the most confident mistakes ----------------------------------------------------------

def _confidence(logits, labels):
    """(confidence of the predicted class, with -1 where the prediction is right), (N,)"""
    confidence, predicted = logits.softmax(dim=1).max(dim=1)
    return torch.where(predicted == labels, -1.0, confidence)


def test_most_confident_mistakes_with_topk_passes():
    def most_confident_mistakes(logits, labels, k=10):
        confidence = _confidence(logits, labels)
        return confidence.topk(min(k, int((confidence >= 0).sum()))).indices

    passes("03.3", most_confident_mistakes)


def _ranked_by(score, logits, labels, k, descending=True):
    wrong = (logits.argmax(dim=1) != labels).nonzero().squeeze(1)
    return wrong[score[wrong].argsort(descending=descending)[:k]]


@pytest.mark.parametrize("mistake, answer, fragment", [
    ("keeps the right answers too",
     lambda z, y, k=10: z.softmax(dim=1).max(dim=1).values.argsort(descending=True)[:k],
     "is a correct prediction"),
    ("pads with right answers when there are fewer than k mistakes",
     lambda z, y, k=10: _confidence(z, y).topk(k).indices, r"3 mistakes.*correct prediction"),
    ("least confident first",
     lambda z, y, k=10: _ranked_by(z.softmax(dim=1).max(dim=1).values, z, y, k, False),
     "not the most confident mistakes"),
    ("ranks by the raw logit",
     lambda z, y, k=10: _ranked_by(z.max(dim=1).values, z, y, k), "softmax"),
    ("ranks by the true class's probability",
     lambda z, y, k=10: _ranked_by(-z.softmax(dim=1)[torch.arange(len(y)), y], z, y, k),
     "not the most confident mistakes"),
    ("the right mistakes in position order",
     lambda z, y, k=10: _ranked_by(z.softmax(dim=1).max(dim=1).values, z, y, k).sort().values,
     "wrong order"),
])
def test_most_confident_mistakes_mistakes_are_named(mistake, answer, fragment):
    fails("03.3", answer, fragment)
