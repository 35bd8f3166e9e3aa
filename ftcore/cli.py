"""The command line: rerun the lessons' experiments headless, at the lessons' sizes or bigger.

::

    python -m ftcore pretrain                          # lesson 03: the MNIST model, cached
    python -m ftcore finetune --target uci-digits      # lesson 04: strategies x label budgets
    python -m ftcore shifts --shift rotation noise     # lesson 08: accuracy under corruptions
    python -m ftcore continual --scenario permuted     # lesson 09: forgetting and its remedies
    python -m ftcore student-edition --out student/    # the lessons without their solutions
    python -m ftcore check submitted/*.ipynb           # grade students' notebooks
    python -m ftcore export --format otter --out DIR   # the exercises for nbgrader or otter

Each experiment prints a table, saves a figure (``--figure PATH``, default
``ftcore-<command>.png`` here), shows progress bars on a terminal, and takes ``--seed``,
``--device`` and ``--source subset|full`` (the bundled MNIST subset, or all of MNIST). The
defaults are the lessons' sizes. Each command is a thin face over ftcore: parse the arguments,
call the library, print its records as a table, plot them. Bad arguments, and errors ftcore
raises about its input (``ValueError``, missing data, existing files), end as
``ftcore <command>: error: ...`` with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import sys
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

# Only light modules up here: parsing the arguments (and --help, and every argparse error)
# never waits for PyTorch, torchvision, scikit-learn or matplotlib. Each command imports what
# it runs.
from . import __version__
from .names import (
    FINETUNE_STRATEGIES,
    OPTIMIZER_NAMES,
    PRETRAIN_EPOCHS,
    REMEDY_NAMES,
    SEVERITIES,
    SHIFT_NAMES,
    STRATEGIES,
    TARGETS,
)

if TYPE_CHECKING:
    from .data import Splits

#: ftcore's errors about its input, shown as ``ftcore <command>: error: ...`` (exit status 2).
#: DataUnavailableError is a FileNotFoundError; CorruptFileError a ValueError.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, PermissionError,
               ModuleNotFoundError)
DEVICES = ("auto", "cpu", "cuda", "mps")
LESSONS = Path(__file__).resolve().parents[1] / "lessons"

# Lesson 04's sizes (transfer learning).
FINETUNE_LR = {"scratch": 0.05, "feature_extraction": 0.1, "partial": 0.05, "full": 0.03,
               # not tuned: the probe at feature extraction's rate, the rest at full's
               "lp_ft": (0.1, 0.03), "gradual": 0.03}
#: The rates of ``--optimizer adam`` and ``adamw``, the best of 3e-4 .. 3e-2 for AdamW on
#: uci-digits (30 steps, 5 and 50 labels per class, 2 seeds): in so short a cosine-annealed run
#: Adam's usual 1e-3 is too slow everywhere; the head alone (a linear model) takes 10x more.
#: (The staged strategies, lp_ft and gradual, train with SGD only.)
FINETUNE_ADAM_LR = {"scratch": 3e-3, "feature_extraction": 3e-2, "partial": 3e-3, "full": 3e-3}
FASHION_TEST_PER_CLASS = 50    # a 500-image Fashion-MNIST test subset keeps scoring quick
# Lesson 09's sizes (catastrophic forgetting).
MLP_HIDDEN = (100, 100)
SEQUENCE_TRAINING = {"momentum": 0.7, "batch_size": 64}
FASHION_SEQUENCE_PER_CLASS = (300, 100)  # Fashion-MNIST train / test images per class


@dataclass(frozen=True)
class Scenario:
    """A task sequence of lesson 09 and the epochs it trains the first task and each later one."""

    description: str
    first_epochs: int
    epochs: int


SCENARIOS = {
    "split-task": Scenario("split MNIST, task-incremental (a head per digit pair)", 2, 2),
    "split-class": Scenario("split MNIST, class-incremental (one 10-way head)", 2, 2),
    "permuted": Scenario("permuted MNIST (domain-incremental)", 2, 2),
    "mnist-uci": Scenario("MNIST, then UCI digits (one shared head)", 5, 3),
    "mnist-fashion": Scenario("MNIST, then Fashion-MNIST (a head each)", 5, 3),
}


# --- argument types ---------------------------------------------------------------------------

def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be a whole number >= 1")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be > 0")
    return value


def rate_or_auto(text: str) -> float | str:
    """An argparse type: a number > 0, or ``auto`` (the learning-rate range test decides)."""
    return "auto" if text == "auto" else positive_float(text)


def device_choice(text: str) -> str | None:
    """An argparse type: ``auto`` (None: ftcore picks) or a device this machine has."""
    kind, colon, index = text.partition(":")
    if kind not in DEVICES or (colon and not (kind == "cuda" and index.isdigit())):
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(DEVICES)} "
                                         "(or cuda:N)")
    if kind in ("auto", "cpu"):
        return None if kind == "auto" else text
    import torch  # only to count the devices asked for

    mps = getattr(torch.backends, "mps", None)
    available = {"cuda": torch.cuda.device_count(),
                 "mps": int(mps is not None and mps.is_available())}.get(kind, 1)
    if int(index or 0) >= available:
        raise argparse.ArgumentTypeError(
            f"{text} was asked for, but PyTorch finds {available or 'no'} {kind} device(s) on "
            "this machine; use --device cpu (or auto)")
    return None if kind == "auto" else text


def jobs_count(text: str) -> int:
    """An argparse type: a number of processes, >= 1, or -1 for one per core."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1 and value != -1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1 (processes) or -1 (one per "
                                         "core)")
    return value


def figure_path(text: str) -> Path:
    """An argparse type: a file name whose extension matplotlib can write (.png, .pdf, ...)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(text)
    formats = FigureCanvasAgg.get_supported_filetypes()
    if path.suffix.lstrip(".").lower() not in formats:
        raise argparse.ArgumentTypeError(f"{text!r} must end in one of "
                                         f"{', '.join('.' + f for f in sorted(formats))}")
    return path


class Distinct(argparse.Action):
    """Store the values of an ``nargs="+"`` option once each, in the order given."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, list(dict.fromkeys(values)))


#: ``add_argument`` settings of an option that takes one or more values (each kept once).
SEVERAL = {"nargs": "+", "action": Distinct}


# --- what every experiment shares -------------------------------------------------------------

def experiment_options() -> argparse.ArgumentParser:
    """The options every experiment command takes (an argparse parent parser)."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("options of every experiment")
    group.add_argument("--seed", type=int, default=0,
                       help="seed of every random choice (default: 0, as in the lessons)")
    group.add_argument("--device", type=device_choice, default=None, metavar="DEVICE",
                       help="auto (default: CUDA, then Apple's MPS, then the CPU), cpu, cuda, "
                            "cuda:N or mps")
    group.add_argument("--source", choices=("subset", "full"), default="subset",
                       help="MNIST data: 'subset', the bundled 5,000 digits (default, offline), "
                            "or 'full', all 70,000 via torchvision (needs the files, or "
                            "--download)")
    group.add_argument("--download", action="store_true",
                       help="allow downloading data that is not on this machine")
    group.add_argument("--data-root", type=Path, default=None, metavar="DIR",
                       help="where data and caches live (default: $FTCORE_DATA, else the "
                            "repository's datasets/)")
    group.add_argument("--figure", type=figure_path, default=None, metavar="PATH",
                       help="where to save the figure (default: ftcore-<command>.png in the "
                            "current folder)")
    group.add_argument("--no-figure", action="store_true", help="do not save a figure")
    group.add_argument("--no-progress", action="store_true",
                       help="no progress bars (they show only on a terminal, and never when "
                            "$CI is set or FTCORE_PROGRESS=0)")
    return common


def progress(args) -> bool | None:
    """``fit``'s ``progress=``: off when asked or when stderr is not a terminal; otherwise
    None, so ftcore still turns it off under CI or ``FTCORE_PROGRESS=0``."""
    return False if args.no_progress or not sys.stderr.isatty() else None


def steps_bar(items: Iterable, args, unit: str):
    """A progress bar (tqdm) over the steps of an experiment (runs, shifts, remedies)."""
    from tqdm.auto import tqdm

    from .runtime import progress_enabled

    items = list(items)
    return tqdm(items, desc=args.command, unit=unit, total=len(items), leave=False,
                disable=not progress_enabled(progress(args)))


def serial(args) -> bool:
    """True when the runs go one after another in this process (no --jobs, no --backend)."""
    return args.jobs == 1 and args.backend in (None, "loky")


def parallel_options(args) -> dict:
    """The ``n_jobs``, ``backend`` and ``address`` of the grid runners
    (:func:`ftcore.parallel.run_all`)."""
    return {"n_jobs": args.jobs, "backend": args.backend, "address": args.address}


def mnist_source(args) -> str:
    """The :func:`load_dataset` name of the MNIST data chosen by ``--source``."""
    return "mnist" if args.source == "subset" else "mnist-full"


def load(args, name: str) -> Splits:
    from .data import load_dataset

    return load_dataset(name, root=args.data_root, download=args.download)


def pretrained_model(args, classes: Iterable[int] = range(10)):
    """Lesson 03's pre-trained CNN on ``--source`` MNIST (``--pretrain-epochs``), trained and
    cached the first time."""
    from .pretrained import PretrainConfig, pretrained_cnn

    config = PretrainConfig(source=mnist_source(args), classes=tuple(classes),
                            epochs=args.pretrain_epochs)
    return pretrained_cnn(config, root=args.data_root, device=args.device,
                          progress=progress(args))


def add_parallel_options(parser: argparse.ArgumentParser) -> None:
    """--jobs, --backend, --address: the grid's independent runs in parallel."""
    group = parser.add_argument_group("running in parallel")
    group.add_argument("--jobs", type=jobs_count, default=1, metavar="N",
                       help="independent runs in N processes at once (default: 1; -1: one "
                            "per core); the results are the same as with 1")
    group.add_argument("--backend", choices=("loky", "dask"), default=None,
                       help="where the runs go: loky (processes here, the default with "
                            "--jobs) or dask (a cluster: pip install 'ftcore[cluster]')")
    group.add_argument("--address", default=None, metavar="URL",
                       help="the Dask scheduler, e.g. tcp://10.0.0.5:8786 (default with "
                            "--backend dask: a local cluster of --jobs workers)")


def add_pretrain_epochs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pretrain-epochs", type=positive_int,
                        default=PRETRAIN_EPOCHS, metavar="N",
                        help=f"epochs of the pre-trained model to start from (default: "
                             f"{PRETRAIN_EPOCHS}, lesson 03's; another value trains "
                             "and caches another model)")


def report(args, text: str, figure: Callable[[], object]) -> int:
    """Print the table(s); draw and save the figure unless ``--no-figure``."""
    print(text)
    if not args.no_figure:
        path = args.figure or Path(f"ftcore-{args.command}.png")
        import matplotlib.pyplot as plt

        path.parent.mkdir(parents=True, exist_ok=True)
        fig = figure()
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        print(f"\nfigure saved to {path}")
    return 0


# --- pretrain (lesson 03) ---------------------------------------------------------------------

def pretrain_command(args) -> int:
    """Pre-train lesson 03's SmallCNN on MNIST (or on some of its digits) with ftcore's SGD and
    cache it where the later lessons look for it; print the history of every epoch and the test
    accuracy, and plot the learning curves. A cached model is loaded, not trained again (unless
    --retrain)."""
    from .data import keep_classes
    from .plots import plot_history
    from .pretrained import PretrainConfig, checkpoint_path, pretrained_cnn, read_checkpoint
    from .sweep import table
    from .train import evaluate

    classes = sorted(set(args.classes))
    if len(classes) < 2:
        raise ValueError(f"--classes {' '.join(map(str, args.classes))}: give at least two "
                         "distinct digits")
    config = PretrainConfig(source=mnist_source(args), classes=tuple(classes),
                            epochs=args.epochs, seed=args.seed)
    path = checkpoint_path(config, args.data_root)
    cached = path.exists() and not args.retrain
    model = pretrained_cnn(config, root=args.data_root, retrain=args.retrain,
                           device=args.device, progress=progress(args))
    history = read_checkpoint(path).get("history", [])
    test = keep_classes(load(args, config.source).test, classes)
    accuracy = evaluate(model, test, device=args.device)["accuracy"]
    text = "\n".join([
        f"pre-training a SmallCNN on {config.source} digits {', '.join(map(str, classes))}",
        table(history, ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds"]),
        f"\ntest accuracy {accuracy:.3f} on {len(test)} held-out images",
        f"checkpoint {'loaded from the cache' if cached else 'trained and cached'}: {path}"])
    return report(args, text, lambda: plot_history(history, title=f"pre-training on "
                                                   f"{config.source}"))


def pretrain_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--classes", type=int, **SEVERAL, default=list(range(10)),
                        choices=range(10), metavar="DIGIT",
                        help="the digits to pre-train on (default: all ten; lesson 04's "
                             "mnist-5-9 target starts from 0 1 2 3 4)")
    parser.add_argument("--epochs", type=positive_int, default=PRETRAIN_EPOCHS, metavar="N",
                        help=f"passes over the training set (default: {PRETRAIN_EPOCHS})")
    parser.add_argument("--retrain", action="store_true",
                        help="train again even if the checkpoint is cached")


# --- finetune (lesson 04) ---------------------------------------------------------------------

def target_task(args, name: str):
    """(pre-trained model, labelled pool, test set) of one of lesson 04's targets."""
    from .transfer import load_target

    return load_target(name, source=mnist_source(args), seed=args.seed, root=args.data_root,
                       download=args.download, pretrain_epochs=args.pretrain_epochs,
                       test_per_class=FASHION_TEST_PER_CLASS if name == "fashion-mnist" else None,
                       device=args.device, progress=progress(args))


def seed_list(args) -> list[int]:
    """``--seeds``: one number N means N seeds from ``--seed`` on; several are the seeds."""
    repeated = sorted({s for s in args.seeds if args.seeds.count(s) > 1})
    if repeated:
        raise ValueError(f"--seeds {' '.join(map(str, args.seeds))} lists seed(s) "
                         f"{', '.join(map(str, repeated))} more than once: give each seed once "
                         "(or one number N for N seeds)")
    if len(args.seeds) > 1:
        return args.seeds
    if args.seeds[0] < 1:
        raise ValueError(f"--seeds {args.seeds[0]}: a single value is the number of repeats "
                         "and must be >= 1")
    return list(range(args.seed, args.seed + args.seeds[0]))


def finetune_command(args) -> int:
    """Lesson 04's experiment: fine-tune the pre-trained CNN on each target with each strategy
    (scratch, feature extraction, partial, full; or in stages: lp_ft, gradual) on a few
    labelled examples per class, repeated over seeds, every run with the same number of
    optimizer steps (SGD, or Adam or AdamW with --optimizer); print the mean ± std test
    accuracy per strategy and label budget (and, with --lr auto, the rates the range test
    chose), and plot it against the budget."""
    from .plots import plot_sweep
    from .sweep import table
    from .transfer import pivot, strategy_grid, summarise

    seeds = seed_list(args)
    staged = [s for s in args.strategy if s not in FINETUNE_ADAM_LR]
    if args.optimizer != "sgd" and staged:
        raise ValueError(f"--strategy {' '.join(staged)} trains each stage with SGD: use "
                         f"--optimizer sgd for it, or the single-stage strategies with "
                         f"--optimizer {args.optimizer}")
    rates = FINETUNE_LR if args.optimizer == "sgd" else FINETUNE_ADAM_LR
    lr = args.lr or {s: rates[s] for s in args.strategy}
    tasks = {name: target_task(args, name) for name in args.target}
    records = []
    if serial(args):  # one grid point at a time, so the progress bar moves
        chunks = [(name, [n], [seed]) for name, n, seed in
                  itertools.product(args.target, args.labels_per_class, seeds)]
    else:  # a whole target at a time, its runs spread over the processes
        chunks = [(name, args.labels_per_class, seeds) for name in args.target]
    for name, budgets, chunk_seeds in steps_bar(chunks, args, "grid part"):
        model, pool, test = tasks[name]
        records += strategy_grid(model, pool, test, strategies=args.strategy,
                                 labels_per_class=budgets, seeds=chunk_seeds, steps=args.steps,
                                 batch_size=args.batch_size, lr=lr,
                                 optimizer=args.optimizer, task=name,
                                 device=args.device, **parallel_options(args))
    summary = summarise(records)
    text = "\n\n".join(
        f"{name}: test accuracy, mean ± std over {len(seeds)} seed(s), {args.optimizer}; "
        f"columns: labels per class\n" + table(pivot(summary, "strategy", "labels_per_class",
                                 lambda r: f"{r['mean']:.3f} ± {r['std']:.3f}", task=name))
        for name in args.target)
    if args.lr == "auto":
        text += "\n\n" + chosen_rates(records, args.target, len(seeds))
    return report(args, text, lambda: plot_sweep(
        summary, x="labels_per_class", group="strategy", panel="task", logx=True,
        xlabel="labelled examples per class",
        title="test accuracy: mean over seeds, band from worst to best seed"))


def chosen_rates(records: list[dict], targets: Iterable[str], seeds: int) -> str:
    """Tables of the learning rates ``--lr auto`` chose: per target, strategy (rows) and
    labels per class (columns), the geometric mean over seeds, one rate per stage joined by
    '/'."""
    import math

    from .sweep import table
    from .transfer import pivot

    def mean_rate(group: list[dict]) -> str:
        per_stage = zip(*(r["lr"] if isinstance(r["lr"], tuple) else (r["lr"],)
                          for r in group), strict=True)
        return "/".join(f"{math.exp(sum(map(math.log, rates)) / len(rates)):.2g}"
                        for rates in per_stage)

    cells = {}
    for r in records:
        cells.setdefault((r["task"], r["strategy"], r["labels_per_class"]), []).append(r)
    rows = [{"task": task, "strategy": strategy, "labels_per_class": n, "lr": mean_rate(group)}
            for (task, strategy, n), group in cells.items()]
    return "\n\n".join(
        f"{name}: learning rates chosen by the range test (min / 10), geometric mean over "
        f"{seeds} seed(s), per stage a/b/...; columns: labels per class\n"
        + table(pivot(rows, "strategy", "labels_per_class", lambda r: r["lr"], task=name))
        for name in targets)


def finetune_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", **SEVERAL, choices=TARGETS, default=list(TARGETS),
                        metavar="TARGET", help="the new task(s): " + "; ".join(
                            f"{k}: {v}" for k, v in TARGETS.items()) + " (default: all three)")
    parser.add_argument("--strategy", **SEVERAL, choices=FINETUNE_STRATEGIES,
                        default=list(STRATEGIES), metavar="STRATEGY",
                        help="how much of the pre-trained model to train: "
                        f"{', '.join(FINETUNE_STRATEGIES)}; lp_ft trains the head alone, then "
                        "everything; gradual unfreezes one block at a time from the head "
                        f"backwards (default: lesson 04's {', '.join(STRATEGIES)})")
    parser.add_argument("--labels-per-class", type=positive_int, **SEVERAL, metavar="N",
                        default=[1, 5, 10, 50],
                        help="labelled training examples per class (default: 1 5 10 50)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[3], metavar="S",
                        help="one number N: N repeats, seeds --seed .. --seed+N-1 (default: "
                             "3); several numbers: exactly those seeds")
    parser.add_argument("--steps", type=positive_int, default=30, metavar="N",
                        help="optimizer updates per run, the same for every strategy and label "
                             "budget (default: 30)")
    parser.add_argument("--optimizer", choices=OPTIMIZER_NAMES, default="sgd",
                        help="sgd (momentum 0.9, default), adam or adamw (weight decay 0.01, "
                             "decoupled): ftcore.optim's; lp_ft and gradual train with sgd")
    parser.add_argument("--lr", type=rate_or_auto, default=None,
                        help="learning rate of every strategy, or 'auto': the learning-rate "
                             "range test's suggestion for each run on its labelled subset "
                             "(each stage's, for lp_ft and gradual) (default: lesson 04's for "
                             "sgd, " + ", ".join(f"{k} {v}" for k, v in FINETUNE_LR.items())
                             + "; for adam and adamw, "
                             + ", ".join(f"{k} {v:g}" for k, v in FINETUNE_ADAM_LR.items())
                             + ")")
    parser.add_argument("--batch-size", type=positive_int, default=25, metavar="N",
                        help="(default: 25)")
    add_pretrain_epochs(parser)
    add_parallel_options(parser)


# --- shifts (lesson 08) -----------------------------------------------------------------------

def shifts_command(args) -> int:
    """Lesson 08's experiment: the pre-trained CNN on MNIST test images corrupted by each
    shift at each severity (in the spirit of MNIST-C); print the accuracy per shift and
    severity, and plot accuracy and confidence against the severity."""
    import torch

    from .plots import plot_sweep
    from .shifts import evaluate_shifts
    from .sweep import table
    from .transfer import pivot

    test = load(args, mnist_source(args)).test
    if args.images > len(test):
        raise ValueError(f"--images {args.images} is more than the {len(test)} test images of "
                         f"{test.name}")
    data = test.subset(torch.arange(args.images), name=test.name)
    model = pretrained_model(args)
    records = []
    for name in steps_bar(args.shift, args, "shift"):
        clean, *shifted = evaluate_shifts(model, data, [name], args.severity, seed=args.seed,
                                          device=args.device)
        records += shifted
    rows = [{**r, "metric": metric, "value": r[metric]} for metric in ("accuracy", "confidence")
            for r in [*({**clean, "shift": name} for name in args.shift), *records]]
    text = (f"accuracy on {len(data)} {data.name} test images (clean: {clean['accuracy']:.3f}); "
            f"columns: severity\n" + table(pivot(records, "shift", "severity",
                                                 lambda r: r["accuracy"])))
    return report(args, text, lambda: plot_sweep(
        rows, x="severity", group="shift", panel="metric", y="value", band=None,
        xlabel="severity (0 = clean)", ylabel="", title="the pre-trained model on shifted MNIST"))


def shifts_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shift", **SEVERAL, choices=SHIFT_NAMES, default=list(SHIFT_NAMES),
                        metavar="SHIFT", help=f"corruptions to apply: {', '.join(SHIFT_NAMES)} "
                        "(default: all)")
    parser.add_argument("--severity", type=int, **SEVERAL, choices=SEVERITIES,
                        default=list(SEVERITIES), metavar="LEVEL",
                        help="1 (mild) .. 5 (severe) (default: all)")
    parser.add_argument("--images", type=positive_int, default=500, metavar="N",
                        help="MNIST test images to corrupt (default: 500, as lesson 08)")
    add_pretrain_epochs(parser)


# --- continual (lesson 09) --------------------------------------------------------------------

def scenario_tasks(args) -> list:
    """The task sequence of ``--scenario``, on ``--source`` MNIST."""
    from .continual import mnist_to_fashion, mnist_to_uci, permuted_mnist, split_mnist
    from .data import Splits, per_class

    mnist = load(args, mnist_source(args))
    if args.scenario.startswith("split-"):
        return split_mnist(mnist, args.scenario.removeprefix("split-"))
    if args.scenario == "permuted":
        if args.permuted_tasks < 2:
            raise ValueError(f"--permuted-tasks {args.permuted_tasks}: a sequence needs at "
                             "least 2 tasks")
        return permuted_mnist(mnist, args.permuted_tasks, seed=args.seed)
    if args.scenario == "mnist-uci":
        return mnist_to_uci(mnist, load(args, "uci-digits"))
    fashion = load(args, "fashion-mnist")
    n_train, n_test = FASHION_SEQUENCE_PER_CLASS
    return mnist_to_fashion(mnist, Splits(per_class(fashion.train, n_train, seed=args.seed),
                                          fashion.val,
                                          per_class(fashion.test, n_test, seed=args.seed)))


def continual_command(args) -> int:
    """Lesson 09's experiment: an MLP learns the first task of a sequence, then each remedy
    trains a copy of it on the later tasks, one after the other; print each remedy's average
    accuracy, forgetting, backward transfer, plasticity and costs, and plot its accuracy
    matrix R[i, j] (accuracy on task j after training on task i)."""
    import torch

    from .continual import compare_remedies, output_size, run_sequence
    from .models import MLP
    from .plots import plot_accuracy_matrices
    from .sweep import table

    scenario = SCENARIOS[args.scenario]
    tasks = scenario_tasks(args)
    training = {"lr": args.lr, "seed": args.seed, "device": args.device, **SEQUENCE_TRAINING}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        start = MLP(output_size(tasks), MLP_HIDDEN)
    run_sequence(start, tasks[:1], epochs=args.first_epochs or scenario.first_epochs,
                 **training)  # learn task 0 once; every remedy starts from here
    epochs = args.epochs or scenario.epochs
    if serial(args):  # one remedy at a time, so the progress bar moves
        results = [run_sequence(copy.deepcopy(start), tasks, name, learned=1, epochs=epochs,
                                **training) for name in steps_bar(args.remedy, args, "remedy")]
    else:
        results = list(compare_remedies(start, tasks, {name: name for name in args.remedy},
                                        learned=1, epochs=epochs, **training,
                                        **parallel_options(args)).values())
    text = (f"{scenario.description}: {len(tasks)} tasks ({', '.join(t.name for t in tasks)})\n"
            + table([r.summary() for r in results]))
    return report(args, text, lambda: plot_accuracy_matrices(
        results, title=f"{scenario.description}: R[i, j] in %"))


def continual_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenario", choices=SCENARIOS, default="split-class",
                        metavar="SCENARIO", help="the task sequence: " + "; ".join(
                            f"{k}: {v.description}" for k, v in SCENARIOS.items())
                        + " (default: split-class)")
    parser.add_argument("--remedy", **SEVERAL, choices=REMEDY_NAMES, default=list(REMEDY_NAMES),
                        metavar="REMEDY", help=f"how each later task is trained: "
                        f"{', '.join(REMEDY_NAMES)} (default: all, with lesson 09's settings)")
    parser.add_argument("--first-epochs", type=positive_int, default=None, metavar="N",
                        help="passes over the first task (default: 2; 5 for mnist-uci and "
                             "mnist-fashion)")
    parser.add_argument("--epochs", type=positive_int, default=None, metavar="N",
                        help="passes over each later task (default: 2; 3 for mnist-uci and "
                             "mnist-fashion)")
    parser.add_argument("--lr", type=positive_float, default=0.03, help="(default: 0.03)")
    parser.add_argument("--permuted-tasks", type=positive_int, default=4, metavar="N",
                        help="tasks of the permuted scenario (default: 4)")
    add_parallel_options(parser)


# --- instructors' commands --------------------------------------------------------------------

def student_edition_command(args) -> int:
    """Write the student edition of every lesson: each exercise's solution replaced by a stub
    that raises NotImplementedError with the exercise's hint, the exercise outputs cleared."""
    from .exercises.edition import write_student_edition

    written = write_student_edition(args.lessons, args.out, overwrite=args.force)
    print(f"wrote the student edition of {len(written)} lesson(s) to {args.out}:")
    print("\n".join(f"  {path.name}" for path in written))
    return 0


def student_edition_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="folder to write the student notebooks into")
    parser.add_argument("--lessons", type=Path, default=LESSONS, metavar="DIR",
                        help="folder of the lessons with solutions (default: the repository's "
                             "lessons/)")
    parser.add_argument("--force", action="store_true",
                        help="replace notebooks that already exist in --out")


def check_command(args) -> int:
    """Execute notebooks (e.g. students' submissions) and grade every exercise of their lesson,
    re-running each check on the student's function in the notebook's own kernel: passed, not
    done, incorrect, missing (deleted), error or not run. The exit status is 0 only if every
    exercise passed."""
    from .exercises.edition import grade
    from .sweep import table

    missing = [str(path) for path in args.notebooks if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"no such notebook: {', '.join(missing)}")
    records = grade(args.notebooks, timeout=args.timeout, exercises_only=args.exercises_only,
                    save_to=args.save_to)
    passed = sum(r["status"] == "passed" for r in records)
    if records:
        print(table(records, ["notebook", "exercise", "status", "message"]) + "\n")
    print(f"{passed} of {len(records)} exercise checks passed"
          + ("" if records else " (the notebooks call no check(...))"))
    return 0 if records and passed == len(records) else 1


def check_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("notebooks", type=Path, nargs="+", metavar="NOTEBOOK",
                        help="notebooks to execute and grade")
    parser.add_argument("--timeout", type=positive_int, default=600, metavar="SECONDS",
                        help="longest a cell may run (default: 600)")
    parser.add_argument("--exercises-only", action="store_true",
                        help="run only each notebook's exercise section (self-contained): "
                             "seconds per notebook instead of the whole lesson")
    parser.add_argument("--save-to", type=Path, default=None, metavar="DIR",
                        help="also write each executed notebook, with its outputs, into DIR")


def export_command(args) -> int:
    """Write every lesson's exercises as assignments for nbgrader (a course folder: source/
    lessonNN/ with solution cells and autograded test cells calling ftcore's checks) or for
    otter-grader (master notebooks for otter assign, whose autograder.zip Gradescope runs).
    Refuses an existing, non-empty folder."""
    from .exercises.export import export

    written = export(args.lessons, args.out, args.format)
    notebooks = [path for path in written if path.suffix == ".ipynb"]
    print(f"wrote {len(notebooks)} {args.format} assignment(s) to {args.out}:")
    print("\n".join(f"  {path.relative_to(args.out)}" for path in written))
    step = ("cd {out} && nbgrader generate_assignment {name}" if args.format == "nbgrader"
            else "cd {out}/{name} && otter assign *.ipynb dist")
    print("next: " + step.format(out=args.out, name=notebooks[0].parent.name))
    return 0


def export_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", required=True, choices=["nbgrader", "otter"],
                        help="the grading tool to write for")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="new (or empty) folder to write the assignments into")
    parser.add_argument("--lessons", type=Path, default=LESSONS, metavar="DIR",
                        help="folder of the lessons with solutions (default: the repository's "
                             "lessons/)")


# --- the parser -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Command:
    """One subcommand: its one-line help, an example for the epilog, options and runner (whose
    docstring is the command's description)."""

    help: str
    example: str
    add_options: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    experiment: bool = True


COMMANDS = {
    "pretrain": Command(
        "pre-train and cache the MNIST CNN (lesson 03)",
        "python -m ftcore pretrain --source full --download --epochs 20",
        pretrain_parser, pretrain_command),
    "finetune": Command(
        "fine-tuning strategies x label budgets (lesson 04)",
        "python -m ftcore finetune --target uci-digits --strategy scratch full "
        "--labels-per-class 1 5 10 50 200 --seeds 5",
        finetune_parser, finetune_command),
    "shifts": Command(
        "the pre-trained model on corrupted digits (lesson 08)",
        "python -m ftcore shifts --shift rotation noise blur --severity 1 3 5 --images 1000",
        shifts_parser, shifts_command),
    "continual": Command(
        "forgetting in a task sequence, per remedy (lesson 09)",
        "python -m ftcore continual --scenario permuted --remedy naive ewc replay",
        continual_parser, continual_command),
    "student-edition": Command(
        "write the lessons with solutions replaced by stubs",
        "python -m ftcore student-edition --out student-lessons/",
        student_edition_parser, student_edition_command, experiment=False),
    "check": Command(
        "run notebooks and report each exercise check",
        "python -m ftcore check --exercises-only submissions/*.ipynb",
        check_parser, check_command, experiment=False),
    "export": Command(
        "write the exercises as nbgrader or otter-grader assignments",
        "python -m ftcore export --format nbgrader --out course/",
        export_parser, export_command, experiment=False),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ftcore", description="Rerun the lessons' experiments from the command line "
        "(python -m ftcore COMMAND), and prepare or grade exercise notebooks.",
        epilog="Each command has its own help: python -m ftcore COMMAND --help")
    parser.add_argument("--version", action="version", version=f"ftcore {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                     title="commands")
    common = experiment_options()
    for name, command in COMMANDS.items():
        sub = commands.add_parser(name, help=command.help,
                                  description=textwrap.fill(" ".join(command.run.__doc__.split()),
                                                            width=79),
                                  epilog=f"example:\n  {command.example}",
                                  parents=[common] if command.experiment else [],
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        command.add_options(sub)
        sub.set_defaults(run=command.run, parser=sub)
    return parser


def check_outputs(args) -> None:
    """Check ``--data-root`` and ``--figure`` (its folder must be writable and the path not a
    folder) before the experiment runs; errors name the option."""
    from .checks import check_writable_dir
    from .data import data_root

    if getattr(args, "data_root", None) is not None:
        data_root(args.data_root, setting="--data-root")
    if "figure" not in args or args.no_figure:
        return
    path = args.figure or Path(f"ftcore-{args.command}.png")
    if path.is_dir():
        raise ValueError(f"--figure {path} is a folder; give a file name, e.g. --figure "
                         f"{path / ('ftcore-' + args.command + '.png')}")
    check_writable_dir(path.parent, "--figure's folder")


def explain(error: Exception) -> str:
    """The message for an error ftcore raised, with the command-line way out where it differs
    from the Python one."""
    from .data import DataUnavailableError  # an error was raised: ftcore is imported already

    message = str(error)
    if isinstance(error, DataUnavailableError):
        message += (" From the command line: add --download (when online), or use "
                    "--source subset (the bundled digits, offline).")
    return message


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (argument errors exit with 2)."""
    args = build_parser().parse_args(argv)
    if getattr(args, "address", None) and args.backend != "dask":
        args.parser.error(f"--address {args.address} names a Dask scheduler: add --backend dask")
    if args.run not in (student_edition_command, check_command):
        import matplotlib

        matplotlib.use("Agg")  # figures are saved, never shown
    try:
        check_outputs(args)  # before any work: minutes of it must not be lost at the end
        return args.run(args)
    except USER_ERRORS as error:
        args.parser.error(explain(error))
    except KeyboardInterrupt:  # caches are written atomically: nothing half-written is left
        print(f"ftcore {args.command}: interrupted", file=sys.stderr)
        return 130


def main_exit() -> None:
    """Entry point of the ``ftcore`` console script and ``python -m ftcore``: ``sys.exit(main())``
    in a process of its own, which therefore reuses the memory PyTorch frees
    (:func:`ftcore.allocator.reuse_freed_memory`; ``main`` called from Python leaves that alone)."""
    from .allocator import reuse_freed_memory  # the standard library only: no PyTorch yet

    reuse_freed_memory()
    sys.exit(main())
