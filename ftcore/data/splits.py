"""Stratified splits and the subsets that fine-tuning experiments need."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from ..checks import ParameterError, check_int, check_number, check_type
from .images import ImageSet

SEED_HINT = "a seed is a whole number from 0 to 2**32 - 1, e.g. seed=0"


def check_seed(seed) -> int:
    """``seed`` as an int; ``ParameterError`` unless it is a whole number in 0..2**32-1
    (``None`` is refused: it would give another split on every call)."""
    if seed is None:
        raise ParameterError("seed=None would give a different split on every call; pass a "
                             "whole number, e.g. seed=0 (the same seed, the same split)")
    return check_int(seed, "seed", low=0, high=2**32 - 1, hint=SEED_HINT)


def check_fraction(fraction, n: int) -> float | int:
    """A held-out share in (0, 1) or a count from 1 to n - 1; ``ParameterError`` otherwise."""
    if isinstance(fraction, float):
        return check_number(fraction, "fraction", low=0, high=1, low_open=True, high_open=True,
                            hint="the held-out share, e.g. 0.2, or a count such as 100")
    return check_int(fraction, "fraction", low=1, high=max(n - 1, 1),
                     hint=f"a count of held-out examples from 1 to {n - 1}, or a share "
                          "such as 0.2")


@dataclass(frozen=True)
class Splits:
    """Disjoint train, validation and test sets of one source.

    Choose models and hyper-parameters on ``val``; touch ``test`` once, at the end.
    """

    train: ImageSet
    val: ImageSet
    test: ImageSet

    def __iter__(self):
        return iter((self.train, self.val, self.test))


def split_positions(labels: torch.Tensor, fraction: float | int, seed: int = 0
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Stratified (rest, held_out) positions for ``labels`` (N,): every class in the same
    proportion in both. ``fraction`` is the held-out share (0 < fraction < 1) or a count.
    The same ``seed`` always gives the same split (scikit-learn's ``train_test_split``)."""
    from sklearn.model_selection import train_test_split  # here: 1.4 s to import

    check_type(labels, "labels", torch.Tensor)
    fraction, seed = check_fraction(fraction, len(labels)), check_seed(seed)
    rest, held = train_test_split(torch.arange(len(labels)).numpy(), test_size=fraction,
                                  random_state=seed, stratify=labels.numpy())
    return torch.as_tensor(rest), torch.as_tensor(held)


def stratified_split(data: ImageSet, fraction: float | int, seed: int = 0
                     ) -> tuple[ImageSet, ImageSet]:
    """Split ``data`` into (rest, held_out) with every class in the same proportion in both
    (see :func:`split_positions`)."""
    check_type(data, "data", ImageSet)
    rest, held = split_positions(data.labels, fraction, seed)
    return data.subset(rest), data.subset(held)


def per_class(data: ImageSet, n: int, seed: int = 0) -> ImageSet:
    """Keep ``n`` randomly chosen examples of every class (e.g. a 10-labels-per-class budget).

    Raises ``ValueError`` if a class has fewer than ``n`` examples.
    """
    check_type(data, "data", ImageSet)
    n, seed = check_int(n, "n", low=1, hint="n is a number of examples per class, e.g. n=10"), \
        check_seed(seed)
    counts = data.class_counts()
    if n > counts.min():
        smallest = int(counts.argmin())
        raise ValueError(
            f"asked for n={n} examples per class, but class {data.classes[smallest]!r} of "
            f"{data.name} has only {int(counts.min())}; use n <= {int(counts.min())}"
        )
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label in range(data.num_classes):
        members = (data.labels == label).nonzero().squeeze(1)
        chosen.append(members[torch.randperm(len(members), generator=generator)[:n]])
    return data.subset(torch.cat(chosen).sort().values)


def keep_classes(data: ImageSet, classes: list[int] | tuple[int, ...] | range) -> ImageSet:
    """Keep only the given class labels, relabelled 0..k-1 in the order given.

    ``keep_classes(mnist, [5, 6, 7, 8, 9])`` makes digit 5 label 0, ..., digit 9 label 4.
    """
    check_type(data, "data", ImageSet)
    if isinstance(classes, (str, bytes)) or not hasattr(classes, "__iter__"):
        raise ParameterError(f"classes={classes!r} must be a list of labels, e.g. [5, 6, 7]")
    classes = [check_int(c, "a label in classes", hint=f"labels are whole numbers 0.."
                         f"{data.num_classes - 1}, e.g. [5, 6, 7]") for c in classes]
    unknown = [c for c in classes if not 0 <= c < data.num_classes]
    if unknown or not classes or len(set(classes)) != len(classes):
        raise ValueError(f"classes={classes} must be distinct labels of {data.name}, each in "
                         f"0..{data.num_classes - 1}")
    new_label = torch.full((data.num_classes,), -1, dtype=torch.int64)
    new_label[classes] = torch.arange(len(classes))
    mask = new_label[data.labels] >= 0
    return ImageSet(data.images[mask], new_label[data.labels[mask]],
                    tuple(data.classes[c] for c in classes), data.name)


def merge_classes(data: ImageSet, groups: Mapping[str, Sequence[int]]) -> ImageSet:
    """Relabel fine classes into coarse ones: every class of ``data`` goes to its group.

    ``groups`` maps each new class name to the old labels it gathers, e.g. Fashion-MNIST's
    departments ``{"tops": [0, 2, 4, 6], "bottoms & dresses": [1, 3], ...}``. The new labels
    are 0..len(groups)-1 in the order of ``groups``; images are kept as they are.

    Args:
        data: images (N, 1, H, W) with labels (N,) in 0..data.num_classes-1.
        groups: a partition of ``data``'s classes: every old label in exactly one group.
    Returns:
        an :class:`ImageSet` with the same images, labels (N,) in 0..len(groups)-1 and
        ``classes`` the group names. Raises ``ValueError`` if a group is empty, a label is
        unknown, listed twice, or in no group (drop unwanted classes first with
        :func:`keep_classes`).
    """
    if not isinstance(groups, Mapping) or not groups:
        raise ValueError(f"groups={groups!r} must be a non-empty dict of new class name -> "
                         "old labels, e.g. {'tops': [0, 2], 'bottoms': [1]}")
    check_type(data, "data", ImageSet)
    new_label = torch.full((data.num_classes,), -1, dtype=torch.int64)
    for index, (name, members) in enumerate(groups.items()):
        members = [check_int(c, f"a label of group {name!r}") for c in members]
        if not members:
            raise ValueError(f"group {name!r} is empty: give it at least one label of {data.name}")
        for c in members:
            if not 0 <= c < data.num_classes:
                raise ValueError(f"group {name!r} has label {c}, but {data.name} has labels "
                                 f"0..{data.num_classes - 1}")
            if new_label[c] >= 0:
                raise ValueError(f"label {c} ({data.classes[c]!r}) is in two groups; each label "
                                 "must be in exactly one")
            new_label[c] = index
    missing = (new_label < 0).nonzero().flatten().tolist()
    if missing:
        names = ", ".join(f"{c} ({data.classes[c]!r})" for c in missing)
        raise ValueError(f"labels {names} of {data.name} are in no group; add them to a group, "
                         "or drop them first with keep_classes")
    return ImageSet(data.images, new_label[data.labels], tuple(groups), data.name)
