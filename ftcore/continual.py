"""Continual learning: train on a sequence of tasks and measure what is forgotten.

:func:`run_sequence` trains one model on tasks 0, 1, ..., T-1 in turn and, after each, tests it
on every task, filling the *accuracy matrix*::

    R[i, j] = accuracy on task j after training on tasks 0..i          (T x T)

Everything else is read from R (Chaudhry et al. 2018; Lopez-Paz & Ranzato 2017)::

    average accuracy   A   = 1/T     Σ_j       R[T-1, j]
    forgetting         F   = 1/(T-1) Σ_{j<T-1} max_{l<T-1} R[l, j] - R[T-1, j]
    backward transfer  BWT = 1/(T-1) Σ_{j<T-1} R[T-1, j] - R[j, j]   (negative: forgetting)
    plasticity             = mean_j R[j, j]                  (how well each new task was learned)

A :class:`Task` names the model's output units it uses (``outputs``), which gives the three
classic scenarios (van de Ven & Tolias 2019) one shape:

==================  ======================================  ============================
scenario            outputs                                 example
==================  ======================================  ============================
task-incremental    each task its own units (its own head)  split MNIST ``"task"``,
                                                            MNIST -> Fashion-MNIST
domain-incremental  every task all units, same classes      permuted MNIST, MNIST -> UCI
class-incremental   every task all units, new classes each  split MNIST ``"class"``
==================  ======================================  ============================

How each task is trained (fine-tuning, replay, EWC, ...) is a remedy: see :mod:`ftcore.remedies`.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from .data import ImageSet, keep_classes
from .optim import SGD
from .parallel import check_jobs, run_all
from .remedies import Naive, make_remedy
from .runtime import pick_device
from .train import check_labels, fit, predict

SPLIT_MNIST_PAIRS = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))
SPLIT_SCENARIOS = ("task", "class")
HEADS = ("shared", "separate")


# --- tasks and scenarios ----------------------------------------------------------------------

@dataclass(frozen=True)
class Task:
    """One task of a sequence.

    Attributes:
        name: shown in tables and plots, e.g. ``"2/3"``.
        train, test: the task's examples; label k means output unit ``outputs[k]``.
        outputs: the model's output units this task is trained and tested on.
    """

    name: str
    train: ImageSet
    test: ImageSet
    outputs: tuple[int, ...]

    def __post_init__(self) -> None:
        outputs = tuple(int(u) for u in self.outputs)
        object.__setattr__(self, "outputs", outputs)
        if not outputs or len(set(outputs)) != len(outputs) or min(outputs) < 0:
            raise ValueError(f"task {self.name!r}: outputs={outputs} must be distinct output "
                             "units >= 0, at least one")
        for split in (self.train, self.test):
            if split.num_classes != len(outputs):
                raise ValueError(f"task {self.name!r}: {split.name} has {split.num_classes} "
                                 f"classes but outputs={outputs} names {len(outputs)} units; "
                                 "give one output unit per class")


def output_size(tasks: list[Task]) -> int:
    """How many output units a model needs for every task of ``tasks``."""
    return 1 + max(max(task.outputs) for task in _check_tasks(tasks))


def split_mnist(data, scenario: str = "class", pairs=SPLIT_MNIST_PAIRS) -> list[Task]:
    """Split MNIST: five two-digit tasks, 0/1, 2/3, 4/5, 6/7, 8/9.

    Args:
        data: anything with ``train`` and ``test`` :class:`ImageSet` s of digits, e.g.
            ``load_dataset("mnist")``.
        scenario: ``"task"``: each task has its own two output units (the model is told which
            task an image is from); ``"class"``: one shared 10-way head, so every test image
            must be told apart from all ten digits.
        pairs: the digits of each task.
    """
    if scenario not in SPLIT_SCENARIOS:
        raise ValueError(f"scenario={scenario!r} is not one of "
                         f"{', '.join(repr(s) for s in SPLIT_SCENARIOS)}")
    tasks = []
    for pair in pairs:
        pair = tuple(int(d) for d in pair)
        name = "/".join(str(d) for d in pair)
        if scenario == "task":
            tasks.append(Task(name, keep_classes(data.train, pair),
                              keep_classes(data.test, pair), pair))
        else:
            train, test = (split.subset(torch.isin(split.labels, torch.tensor(pair)))
                           for split in (data.train, data.test))
            tasks.append(Task(name, train, test, tuple(range(data.train.num_classes))))
    return tasks


def pixel_permutations(n_tasks: int, seed: int = 0, size: int = 28 * 28) -> torch.Tensor:
    """``n_tasks`` fixed pixel orders, int64 (n_tasks, size); the first is the identity (the
    original images), the others random permutations drawn from ``seed``."""
    if n_tasks < 1:
        raise ValueError(f"n_tasks={n_tasks} must be >= 1")
    generator = torch.Generator().manual_seed(seed)
    return torch.stack([torch.arange(size)] +
                       [torch.randperm(size, generator=generator) for _ in range(n_tasks - 1)])


def permute_pixels(data: ImageSet, permutation: torch.Tensor, name: str) -> ImageSet:
    """``data`` with its pixels reordered: pixel k of each new image is pixel permutation[k]."""
    n, c, h, w = data.images.shape
    images = data.images.reshape(n, c * h * w)[:, permutation].reshape(n, c, h, w)
    return ImageSet(images, data.labels, data.classes, name)


def permuted_mnist(data, n_tasks: int = 3, seed: int = 0) -> list[Task]:
    """Permuted MNIST: the same ten digits, each task with its own fixed pixel shuffle
    (task 0 the original images). Domain-incremental: one shared 10-way head."""
    tasks = []
    for k, permutation in enumerate(pixel_permutations(n_tasks, seed)):
        name = "original" if k == 0 else f"permutation {k}"
        tasks.append(Task(name, permute_pixels(data.train, permutation, name),
                          permute_pixels(data.test, permutation, name),
                          tuple(range(data.train.num_classes))))
    return tasks


def task_sequence(datasets: dict, heads: str = "shared") -> list[Task]:
    """One task per data set, in order: ``{name: splits with train and test}``.

    ``heads="shared"``: every task uses output units 0..C-1 (same classes, new domain, e.g.
    MNIST -> UCI digits); ``"separate"``: each task gets its own block of units after the
    previous task's (unrelated tasks sharing one body, e.g. MNIST -> Fashion-MNIST).
    """
    if heads not in HEADS:
        raise ValueError(f"heads={heads!r} is not one of {', '.join(repr(h) for h in HEADS)}")
    tasks, first = [], 0
    for name, data in datasets.items():
        outputs = tuple(range(first, first + data.train.num_classes))
        tasks.append(Task(name, data.train, data.test, outputs))
        first = outputs[-1] + 1 if heads == "separate" else 0
    return _check_tasks(tasks)


def mnist_to_uci(mnist, uci) -> list[Task]:
    """MNIST, then UCI digits (other writers, other scanner): one shared head."""
    return task_sequence({"MNIST": mnist, "UCI digits": uci}, heads="shared")


def mnist_to_fashion(mnist, fashion) -> list[Task]:
    """MNIST, then Fashion-MNIST: two unrelated tasks, one body, a head each (20 units)."""
    return task_sequence({"MNIST": mnist, "Fashion-MNIST": fashion}, heads="separate")


def _check_tasks(tasks) -> list[Task]:
    tasks = list(tasks)
    if not tasks:
        raise ValueError("the task sequence is empty: give at least one Task, e.g. "
                         "split_mnist(load_dataset('mnist'))")
    for task in tasks:
        if not isinstance(task, Task):
            raise TypeError(f"expected ftcore.continual.Task objects, got {type(task).__name__}")
    return tasks


class OutputSlice(nn.Module):
    """The model seen through some of its output units: logits (N, len(outputs))."""

    def __init__(self, model: nn.Module, outputs: tuple[int, ...]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("outputs", torch.tensor(outputs), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[:, self.outputs]


# --- metrics of the accuracy matrix -----------------------------------------------------------

def _matrix(R, at_least: int = 1) -> torch.Tensor:
    R = torch.as_tensor(R, dtype=torch.float64)
    if R.dim() != 2 or R.shape[0] != R.shape[1] or R.shape[0] < at_least:
        raise ValueError(f"the accuracy matrix must be square, T x T with T >= {at_least} "
                         f"(R[i, j]: accuracy on task j after training on task i), got shape "
                         f"{tuple(R.shape)}")
    return R


def average_accuracy(R) -> float:
    """Mean accuracy over all tasks after the last one: ``mean_j R[T-1, j]``."""
    return _matrix(R)[-1].mean().item()


def forgetting(R) -> float:
    """Chaudhry et al. (2018): for each task but the last, its best accuracy before the end
    minus its final accuracy, averaged: ``mean_{j<T-1} (max_{l<T-1} R[l, j] - R[T-1, j])``."""
    R = _matrix(R, at_least=2)
    best = R[:-1, :-1].max(dim=0).values
    return (best - R[-1, :-1]).mean().item()


def backward_transfer(R) -> float:
    """Lopez-Paz & Ranzato (2017): ``mean_{j<T-1} (R[T-1, j] - R[j, j])``, how much learning
    later tasks changed the earlier ones (negative: forgetting, positive: they improved)."""
    R = _matrix(R, at_least=2)
    return (R[-1, :-1] - R.diagonal()[:-1]).mean().item()


def plasticity(R, learned: int = 0) -> float:
    """Mean accuracy on each task just after learning it: ``mean_{j>=learned} R[j, j]``
    (tasks the model knew before the sequence started, ``learned`` of them, are left out)."""
    R = _matrix(R)
    if not 0 <= learned < len(R):
        raise ValueError(f"learned={learned} must be from 0 to {len(R) - 1}")
    return R.diagonal()[learned:].mean().item()


# --- running a sequence -----------------------------------------------------------------------

@dataclass
class SequenceResult:
    """What :func:`run_sequence` measured.

    Attributes:
        label: the remedy's name (or the label given).
        tasks: task names, in training order.
        accuracy: R as a list of rows, ``accuracy[i][j]`` = accuracy on task j after task i.
        curve: with ``eval_every``: ``{"task": i, "step": s, "accuracy": [per task]}`` after
            every ``eval_every`` steps of training on task i (step 0: before it starts).
        seconds: time spent training and in the remedy's hooks (evaluation excluded).
        memory: numbers the remedy stores besides the model, at the end.
        learned: leading tasks the model knew before the run (not trained in it).
    """

    label: str
    tasks: list[str]
    accuracy: list[list[float]]
    curve: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    memory: int = 0
    learned: int = 0

    def summary(self) -> dict:
        """One row of a comparison table: the metrics of R plus the costs."""
        two = len(self.tasks) >= 2
        return {"remedy": self.label,
                "average_accuracy": average_accuracy(self.accuracy),
                "forgetting": forgetting(self.accuracy) if two else float("nan"),
                "backward_transfer": backward_transfer(self.accuracy) if two else float("nan"),
                "plasticity": plasticity(self.accuracy, self.learned),
                "seconds": self.seconds, "memory": self.memory}


def run_sequence(model: nn.Module, tasks: list[Task], remedy: str | Naive = "naive", *,
                 epochs: int = 1, lr: float = 0.03, momentum: float = 0.7,
                 batch_size: int = 64, eval_every: int | None = None, learned: int = 0,
                 seed: int = 0, label: str | None = None, device=None,
                 **options) -> SequenceResult:
    """Train ``model`` (in place) on ``tasks`` one after the other, testing on every task
    after each, and return the accuracy matrix and costs.

    Args:
        model: maps (N, 1, 28, 28) to logits with at least :func:`output_size` (tasks) units.
        tasks: the sequence, e.g. ``split_mnist(load_dataset("mnist"))``.
        remedy: a name from :data:`ftcore.remedies.REMEDIES` (``options`` go to it, e.g.
            ``capacity=100``) or a remedy object.
        epochs, lr, momentum, batch_size: training on each task, with ftcore's SGD (a fresh
            optimizer per task).
        eval_every: also test every task after every this many steps (fills ``curve``).
        learned: how many leading tasks the model already knows (e.g. it was pre-trained on
            task 0): they are tested and shown to the remedy (replay stores their examples,
            EWC their Fisher) but not trained again. Lets several remedies branch from one
            trained model instead of each re-learning the first task.
        seed: fixes the batch order and dropout masks.
    """
    tasks = _check_tasks(tasks)
    remedy = make_remedy(remedy, **options)
    if epochs < 1:
        raise ValueError(f"epochs={epochs} must be >= 1")
    if eval_every is not None and eval_every < 1:
        raise ValueError(f"eval_every={eval_every} must be >= 1 step (or None)")
    if not 0 <= learned < len(tasks):
        raise ValueError(f"learned={learned} must be from 0 to {len(tasks) - 1} (the number of "
                         "leading tasks the model already knows; at least one must be left)")
    device = pick_device(device)
    model.to(device)
    with torch.no_grad():
        was_training = model.training
        units = model.eval()(tasks[0].test.images[:1].to(device)).shape[-1]
        model.train(was_training)
    if output_size(tasks) > units:
        raise ValueError(f"the tasks use {output_size(tasks)} output units but the model has "
                         f"{units}; build it with num_classes={output_size(tasks)}")

    for t in tasks:  # fail early, with ftcore's message, if a test set does not fit its outputs
        check_labels(OutputSlice(model, t.outputs), t.test, device)
    test_images = torch.cat([t.test.images for t in tasks])  # one forward pass tests every task
    testing = [0.0]  # seconds spent testing, left out of the remedy's time

    def test_all() -> list[float]:
        start = time.perf_counter()
        scores = task_accuracies(model, tasks, device, test_images)
        testing[0] += time.perf_counter() - start
        return scores

    def penalty(_) -> torch.Tensor | float:  # fit passes the sliced view: use the model
        value = remedy.penalty(model)
        return 0.0 if value is None else value

    result = SequenceResult(label or remedy.name, [t.name for t in tasks], [], learned=learned)
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    remedy.start(model, tasks)
    for i, task in enumerate(tasks):
        remedy.before_task(model, i, task)
        if i >= learned:  # tasks the model already knows are not trained again
            train, outputs = remedy.training_set(i, task)
            view = OutputSlice(model, outputs)
            optimizer = SGD([p for p in model.parameters() if p.requires_grad],
                            lr=remedy.learning_rate(i, lr), momentum=momentum)
            chunk = len(train) if eval_every is None else eval_every * batch_size
            step = 0
            if eval_every is not None:
                result.curve.append({"task": i, "step": 0, "accuracy": test_all()})
            for _ in range(epochs):
                for piece in torch.randperm(len(train), generator=generator).split(chunk):
                    fit(view, train.subset(piece), epochs=1, batch_size=batch_size,
                        optimizer=optimizer, penalty=penalty,
                        seed=int(torch.randint(2**31, (1,), generator=generator)),
                        device=device, progress=False)
                    step += -(-len(piece) // batch_size)
                    if eval_every is not None:
                        result.curve.append({"task": i, "step": step, "accuracy": test_all()})
        remedy.after_task(model, i, task)
        result.accuracy.append(test_all())
    result.seconds = time.perf_counter() - start - testing[0]
    result.memory = remedy.memory()
    return result


def task_accuracies(model: nn.Module, tasks: list[Task], device=None,
                    test_images: torch.Tensor | None = None) -> list[float]:
    """Test accuracy on every task, each read from its own output units: a list of T floats.

    ``test_images`` is ``torch.cat([t.test.images for t in tasks])`` (N, 1, 28, 28), if the
    caller already has it: one forward pass tests every task.
    """
    if test_images is None:
        test_images = torch.cat([t.test.images for t in tasks])
    logits = predict(model, test_images, device=device).split([len(t.test) for t in tasks])
    return [(out[:, list(t.outputs)].argmax(1) == t.test.labels).float().mean().item()
            for out, t in zip(logits, tasks, strict=True)]


def joint_training(model: nn.Module, tasks: list[Task], *, epochs: int = 1, lr: float = 0.03,
                   momentum: float = 0.7, batch_size: int = 64, seed: int = 0,
                   device=None) -> dict:
    """The upper reference point of continual learning: train ``model`` (in place) on the
    training sets of ALL ``tasks`` at once, shuffled together, as if none were ever taken away.

    Each task's label k is trained on its output unit ``outputs[k]``, so the scenarios keep
    their heads (task-incremental tasks their own units, class-incremental ones all ten).
    ``epochs`` passes over the union: the same number of examples as training the tasks one
    after the other for ``epochs`` each.
    Returns ``{"remedy": "joint", "accuracy": [test accuracy per task], "average_accuracy":
    mean over tasks}``, the joint model's counterpart of the last row of R.
    """
    tasks = _check_tasks(tasks)
    if epochs < 1:
        raise ValueError(f"epochs={epochs} must be >= 1")
    units = sorted({u for t in tasks for u in t.outputs})
    position = torch.full((max(units) + 1,), -1, dtype=torch.int64)
    position[units] = torch.arange(len(units))
    labels = torch.cat([position[torch.tensor(t.outputs)[t.train.labels]] for t in tasks])
    union = ImageSet(torch.cat([t.train.images for t in tasks]), labels,
                     tuple(str(u) for u in units), "all tasks")
    device = pick_device(device)
    fit(OutputSlice(model.to(device), tuple(units)), union, epochs=epochs, lr=lr,
        momentum=momentum, batch_size=batch_size, seed=seed, device=device, progress=False)
    accuracy = task_accuracies(model, tasks, device)
    return {"remedy": "joint", "accuracy": accuracy,
            "average_accuracy": sum(accuracy) / len(accuracy)}


def compare_remedies(model: nn.Module, tasks: list[Task], remedies: dict, *, n_jobs: int = 1,
                     backend: str | None = None, address: str | None = None, **options
                     ) -> dict[str, SequenceResult]:
    """Run the same sequence once per remedy, each on a fresh copy of ``model``.

    Args:
        model: the starting point; it is copied, never trained itself.
        remedies: ``{label: remedy}``, a remedy being a name or a remedy object (objects keep
            their state after the run, e.g. ``EWC.stiffness()``, when ``n_jobs=1``; in
            parallel each worker trains a copy, so only the results come back).
        n_jobs, backend, address: run the remedies in parallel processes or on a cluster
            (:func:`ftcore.parallel.run_all`); the results are the same.
        options: passed to :func:`run_sequence` (``epochs``, ``lr``, ``seed``, ...).
    Returns:
        ``{label: SequenceResult}`` in the order of ``remedies``.
    """
    if not remedies:
        raise ValueError("remedies is empty: give at least one, e.g. {'naive': 'naive'}")
    check_jobs(n_jobs, backend)
    calls = [{"model": model, "tasks": tasks, "remedy": remedy, "label": label, **options}
             for label, remedy in remedies.items()]
    results = run_all(_copy_and_run, calls, n_jobs=n_jobs, backend=backend, address=address)
    return dict(zip(remedies, results, strict=True))


def _copy_and_run(model: nn.Module, tasks: list[Task], remedy, **options) -> SequenceResult:
    return run_sequence(copy.deepcopy(model), tasks, remedy, **options)
