"""Remedies for catastrophic forgetting, and the pieces they are built from.

A remedy changes how :func:`ftcore.continual.run_sequence` trains each task of a sequence.
Each is a small class overriding the hooks it needs (the base class, :class:`Naive`, changes
nothing: plain fine-tuning, one task after the other):

==============  ====================================================================  ===========
remedy          what it does after the first task                                     stores
==============  ====================================================================  ===========
``naive``       nothing: fine-tune on the new task                                    nothing
``freeze``      freeze the body (``features``); only the head learns                  nothing
``low_lr``      train with the learning rate times ``factor``                         nothing
``replay``      mix a class-balanced buffer of old examples into every new task       images
``ewc``         penalise moving the weights the old tasks need (diagonal Fisher)      2 x weights
``l2sp``        penalise moving any weight away from where the last task left it      weights
==============  ====================================================================  ===========

EWC (Kirkpatrick et al. 2017) adds, for every earlier task t with weights θ*_t and diagonal
Fisher information F_t::

    penalty(θ) = λ/2 Σ_t Σ_i F_t,i (θ_i - θ*_t,i)²

L2-SP (Li et al. 2018) is the same penalty with every F_i = 1: all weights equally important.

Hooks receive the shared model (its output layer covers every task) and *tasks*: any objects
with ``name``, ``train``, ``test`` (:class:`~ftcore.data.ImageSet` s with labels that index
``outputs``) and ``outputs`` (the model's output units the task uses), such as
:class:`ftcore.continual.Task`.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F
from torch import nn

from .data import ImageSet
from .regularization import l2sp_penalty
from .surgery import freeze, unfreeze

# --- the replay buffer ------------------------------------------------------------------------


class ReplayBuffer:
    """A class-balanced memory of at most ``capacity // num_classes`` examples per class.

    Each class keeps a uniform random sample of every example of that class ever offered to
    :meth:`add` (reservoir sampling, Vitter's algorithm R, one reservoir per class), so old and
    new examples are equally likely to stay, and the memory never grows past its capacity.

    Args:
        capacity: total number of examples the buffer may hold.
        num_classes: labels run 0..num_classes-1 (the model's output units).
        seed: fixes which examples are kept.
    """

    def __init__(self, capacity: int, num_classes: int, seed: int = 0) -> None:
        for name, value in (("capacity", capacity), ("num_classes", num_classes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a whole number >= 1")
        if capacity < num_classes:
            raise ValueError(
                f"capacity={capacity} is smaller than num_classes={num_classes}: a "
                f"class-balanced buffer needs room for at least one example per class; use "
                f"capacity >= {num_classes} (e.g. {10 * num_classes} for 10 per class)")
        self.capacity, self.num_classes = capacity, num_classes
        self.per_class = capacity // num_classes
        self._slots: list[list[torch.Tensor]] = [[] for _ in range(num_classes)]
        self._seen = [0] * num_classes
        self._rng = random.Random(seed)

    def add(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Offer examples: images (N, 1, 28, 28), int64 labels (N,) in 0..num_classes-1."""
        if len(images) != len(labels):
            raise ValueError(f"got {len(images)} images but {len(labels)} labels")
        if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < self.num_classes:
            raise ValueError(f"labels must lie in 0..{self.num_classes - 1}, got "
                             f"{int(labels.min())}..{int(labels.max())}")
        k = self.per_class
        for image, label in zip(images, labels.tolist(), strict=True):
            slots = self._slots[label]
            self._seen[label] += 1
            if len(slots) < k:                      # room left: keep it
                slots.append(image.clone())
            else:                                   # keep it with probability k / seen
                j = self._rng.randrange(self._seen[label])
                if j < k:
                    slots[j] = image.clone()

    def __len__(self) -> int:
        return sum(len(s) for s in self._slots)

    def class_counts(self) -> torch.Tensor:
        """Examples held per class: int64 (num_classes,)."""
        return torch.tensor([len(s) for s in self._slots], dtype=torch.int64)

    @property
    def images(self) -> torch.Tensor:
        """Everything held, class by class: (len(self), 1, 28, 28)."""
        held = [image for slots in self._slots for image in slots]
        return torch.stack(held) if held else torch.empty(0, 1, 28, 28)

    @property
    def labels(self) -> torch.Tensor:
        """The label of each image in :attr:`images`: int64 (len(self),)."""
        return torch.repeat_interleave(torch.arange(self.num_classes), self.class_counts())

    def __repr__(self) -> str:
        return (f"ReplayBuffer(capacity={self.capacity}, num_classes={self.num_classes}, "
                f"held={len(self)})")


# --- EWC: the diagonal Fisher and the quadratic penalty ---------------------------------------


def diagonal_fisher(model: nn.Module, data: ImageSet, outputs=None, n_samples: int = 100,
                    seed: int = 0) -> dict[str, torch.Tensor]:
    """The diagonal of the Fisher information of ``model`` on ``data``::

        F_i = E_x E_{y ~ p_θ(y|x)} [ (∂ log p_θ(y|x) / ∂θ_i)² ]

    estimated from ``n_samples`` examples of ``data`` (all, if fewer), one label drawn from the
    model's own prediction for each. A large F_i means the prediction is sensitive to θ_i.

    Args:
        model: maps (N, 1, 28, 28) to logits; used in evaluation mode.
        data: the task's examples (only the images are used).
        outputs: the output units the task uses (default: all).
        n_samples, seed: how many examples, and which.
    Returns:
        ``{name: F}`` for every trainable parameter, each F of the parameter's shape, >= 0.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples={n_samples} must be >= 1")
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(len(data), generator=generator)[:n_samples]
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    fisher = {name: torch.zeros_like(p) for name, p in params.items()}
    was_training = model.training
    model.eval()
    device = next(iter(params.values())).device
    for i in chosen.tolist():
        logits = model(data.images[i:i + 1].to(device))
        if outputs is not None:
            logits = logits[:, list(outputs)]
        log_p = F.log_softmax(logits, dim=1)[0]
        if not torch.isfinite(log_p).all():
            raise ValueError("diagonal_fisher: the model's outputs are not finite, so training "
                             "diverged; lower the learning rate (or EWC's lam)")
        y = torch.multinomial(log_p.detach().exp().cpu(), 1, generator=generator).item()
        grads = torch.autograd.grad(log_p[y], list(params.values()), allow_unused=True)
        for name, g in zip(params, grads, strict=True):
            if g is not None:
                fisher[name] += g.detach() ** 2
    model.train(was_training)
    return {name: f / len(chosen) for name, f in fisher.items()}


def ewc_penalty(model: nn.Module, fisher: dict[str, torch.Tensor],
                anchor: dict[str, torch.Tensor], lam: float) -> torch.Tensor:
    """``λ/2 Σ_i F_i (θ_i - θ*_i)²`` over the parameters named in ``fisher`` (a scalar).

    ``anchor`` holds θ*, the weights after the old task. With every F_i = 1 this is L2-SP.
    """
    params = dict(model.named_parameters())
    total = torch.zeros((), device=next(iter(params.values())).device)
    for name, f in fisher.items():
        total = total + (f * (params[name] - anchor[name]) ** 2).sum()
    return lam / 2 * total


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of every parameter, ``{name: tensor}`` (an anchor θ*)."""
    return {name: p.detach().clone() for name, p in model.named_parameters()}


# --- the remedies -----------------------------------------------------------------------------


class Naive:
    """Plain fine-tuning: train on each task in turn, nothing else (the baseline).

    Also the base class of the remedies, which override only the hooks they need:
    ``start`` (a new sequence begins), ``before_task``, ``training_set``, ``learning_rate``,
    ``penalty``, ``after_task`` and ``memory``.
    """

    name = "naive"

    def start(self, model: nn.Module, tasks: list) -> None:
        """Forget any state from an earlier run."""

    def before_task(self, model: nn.Module, index: int, task) -> None:
        """Called before training on ``tasks[index]``."""

    def training_set(self, index: int, task) -> tuple[ImageSet, tuple[int, ...]]:
        """What to train on for this task: examples and the output units their labels index."""
        return task.train, tuple(task.outputs)

    def learning_rate(self, index: int, lr: float) -> float:
        return lr

    def penalty(self, model: nn.Module) -> torch.Tensor | None:
        """A scalar added to the loss at every step (None: no penalty)."""
        return None

    def after_task(self, model: nn.Module, index: int, task) -> None:
        """Called once ``tasks[index]`` has been learned."""

    def memory(self) -> int:
        """Numbers (floats) the remedy stores besides the model."""
        return 0

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({options})"


class FreezeBody(Naive):
    """After the first task, freeze ``parts`` (default the body); the rest keeps learning."""

    name = "freeze"

    def __init__(self, parts: tuple[str, ...] = ("features",)) -> None:
        self.parts = tuple(parts)

    def start(self, model, tasks):
        unfreeze(model)

    def before_task(self, model, index, task):
        if index == 1:
            freeze(model, *self.parts)


class LowerLR(Naive):
    """After the first task, train with the learning rate times ``factor`` (< 1)."""

    name = "low_lr"

    def __init__(self, factor: float = 0.1) -> None:
        if not 0 < factor <= 1:
            raise ValueError(f"factor={factor!r} must be in (0, 1]: the new tasks' learning "
                             "rate is factor times the first task's")
        self.factor = factor

    def learning_rate(self, index, lr):
        return lr if index == 0 else lr * self.factor


class Replay(Naive):
    """Rehearsal: train each new task on its examples plus old ones from a
    :class:`ReplayBuffer` of ``capacity`` examples (``capacity // outputs`` per class).

    The few remembered examples are drawn again and again (with replacement) until they make
    up ``share`` of the training set, so old classes are not drowned out by the new ones
    (experience replay: each batch is part new, part old). Mixed examples are trained on the
    union of the new task's output units and the remembered ones, so old and new classes keep
    competing for the same outputs. The price: a bigger training set, so more time per task.
    """

    name = "replay"

    def __init__(self, capacity: int = 100, share: float = 0.5, seed: int = 0) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity={capacity!r} must be a whole number >= 1 (examples "
                             "kept in all, e.g. 100 for 10 per class of 10)")
        if not 0 < share < 1:
            raise ValueError(f"share={share!r} must be in (0, 1): the fraction of each task's "
                             "training set drawn from the buffer (0.5: half old, half new)")
        self.capacity, self.share, self.seed = capacity, share, seed

    def start(self, model, tasks):
        num_outputs = 1 + max(max(task.outputs) for task in tasks)
        self._buffer = ReplayBuffer(self.capacity, num_outputs, self.seed)
        self._names = {}  # output unit -> class name
        self._generator = torch.Generator().manual_seed(self.seed)

    def training_set(self, index, task):
        outputs = tuple(task.outputs)
        if len(self._buffer) == 0:
            return task.train, outputs
        n_old = round(len(task.train) * self.share / (1 - self.share))
        drawn = torch.randint(len(self._buffer), (n_old,), generator=self._generator)
        images = torch.cat([task.train.images, self._buffer.images[drawn]])
        units = torch.cat([torch.tensor(outputs)[task.train.labels], self._buffer.labels[drawn]])
        union = torch.unique(units)                        # sorted output units
        names = {**self._names, **dict(zip(outputs, task.train.classes, strict=True))}
        mixed = ImageSet(images, torch.searchsorted(union, units),
                         tuple(names[u] for u in union.tolist()), f"{task.train.name}+replay")
        return mixed, tuple(union.tolist())

    def after_task(self, model, index, task):
        outputs = tuple(task.outputs)
        self._names.update(zip(outputs, task.train.classes, strict=True))
        self._buffer.add(task.train.images, torch.tensor(outputs)[task.train.labels])

    def memory(self):
        return self._buffer.images.numel() if hasattr(self, "_buffer") else 0

    @property
    def buffer(self) -> ReplayBuffer:
        return self._buffer


class EWC(Naive):
    """Elastic weight consolidation: after each task, store its weights θ* and diagonal Fisher
    F; while training later tasks add ``λ/2 Σ F_i (θ_i - θ*_i)²`` per stored task.

    Args:
        lam: λ, the penalty's strength (its scale depends on the Fisher's: tune it).
        n_samples: examples used to estimate each task's Fisher.
    """

    name = "ewc"

    def __init__(self, lam: float = 30.0, n_samples: int = 100, seed: int = 0) -> None:
        if not lam >= 0:
            raise ValueError(f"lam={lam!r} must be >= 0 (0 switches the penalty off)")
        self.lam, self.n_samples, self.seed = lam, n_samples, seed

    def start(self, model, tasks):
        self._memory: list[tuple[dict, dict]] = []  # (fisher, anchor) per learned task

    def penalty(self, model):
        if not self._memory:
            return None
        return sum(ewc_penalty(model, fisher, anchor, self.lam)
                   for fisher, anchor in self._memory)

    def after_task(self, model, index, task):
        fisher = diagonal_fisher(model, task.train, task.outputs, self.n_samples,
                                 self.seed + index)
        self._memory.append((fisher, snapshot(model)))

    def stiffness(self) -> float:
        """The stiffest spring of the penalty, ``max_i λ Σ_t F_t,i`` (0 before any task).

        Gradient descent on the penalty alone is stable only while ``lr * stiffness`` stays
        below 2 (below ``2 * (1 + momentum)`` with momentum): past it, every step overshoots
        θ* by more than it corrects and training diverges. That caps λ for a given lr.
        """
        total: dict[str, torch.Tensor] = {}
        for fisher, _ in getattr(self, "_memory", []):
            for name, f in fisher.items():
                total[name] = total.get(name, 0) + f
        return self.lam * max((f.max().item() for f in total.values()), default=0.0)

    def memory(self):
        return sum(t.numel() for pair in getattr(self, "_memory", []) for part in pair
                   for t in part.values())


class L2SP(Naive):
    """L2-SP: pull every weight towards where the previous task left it,
    ``α/2 Σ_i (θ_i - θ*_i)²`` (EWC with every weight equally important), using
    :func:`ftcore.regularization.l2sp_penalty`."""

    name = "l2sp"

    def __init__(self, alpha: float = 0.1) -> None:
        if not alpha >= 0:
            raise ValueError(f"alpha={alpha!r} must be >= 0 (0 switches the penalty off)")
        self.alpha = alpha

    def start(self, model, tasks):
        self._penalty, self._stored = None, 0

    def penalty(self, model):
        return None if self._penalty is None else self._penalty(model)

    def after_task(self, model, index, task):
        self._penalty = l2sp_penalty(self.alpha, model)  # copies θ* now
        self._stored = sum(p.numel() for p in model.parameters())

    def memory(self):
        return getattr(self, "_stored", 0)


REMEDIES = {cls.name: cls for cls in (Naive, FreezeBody, LowerLR, Replay, EWC, L2SP)}


def make_remedy(name: str | Naive, **options) -> Naive:
    """The remedy called ``name`` (one of :data:`REMEDIES`) with its options, e.g.
    ``make_remedy("replay", capacity=100)``. A remedy object is returned as it is."""
    if isinstance(name, Naive):
        if options:
            raise ValueError(f"options {sorted(options)} given with a ready-made remedy "
                             f"{name!r}; pass them to its constructor instead")
        return name
    if name not in REMEDIES:
        raise ValueError(f"remedy={name!r} is not one of "
                         f"{', '.join(repr(r) for r in REMEDIES)}")
    return REMEDIES[name](**options)
