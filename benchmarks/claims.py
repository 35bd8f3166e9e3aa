"""Run the lessons under other seeds and count which asserted claims hold: the robustness harness.

    python benchmarks/claims.py                                # every lesson, all configurations
    python benchmarks/claims.py lessons/03_*.ipynb --config seed=1,pretrain_seed=1
    python benchmarks/claims.py --jobs 2 --out /tmp/claims      # keep the executed notebooks

A configuration sets a lesson's ``parameters`` cell (papermill injects a cell right after it):
``SEED = s``; for a lesson's ``SEEDS`` of n entries, ``SEEDS = tuple(range(10 s, 10 s + n))``
(so s = 0 is the committed (0, 1, ...)); ``PRETRAIN_SEED``; and ``THREADS`` where a
configuration names it. Only the parameters a lesson defines are passed (read with papermill's
``inspect_notebook``); configurations that give a lesson the same values run once. The default
configurations are issue 12's: s = 0..4 with the committed pre-trained network, s = 0, 1 with
the network pre-trained with seed 1, and the committed parameters on 2 threads.

Every cell runs even after one fails (nbclient with ``allow_errors``), so the table counts, per
lesson and configuration, the code cells that contain an ``assert`` and how many of them ran
without an error; each failure is named by its cell index in the lesson (0-based, as nbformat
counts) and the first line of its error. The exit status is 1 if any cell raised or a lesson
ran out of time.

Each lesson runs in a kernel of its own (``--jobs`` at a time, one torch thread each unless the
configuration sets THREADS) with ``FTCORE_PROGRESS=0`` and a data root of its own: links to the
real one, except ``pretrained/``, which is a copy, so a run never replaces a network that the
committed lessons read. Nothing is written into ``lessons/``.
"""

from __future__ import annotations

import argparse
import ast
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LESSONS = ROOT / "lessons"
KEYS = ("seed", "pretrain_seed", "threads")


@dataclass(frozen=True)
class Config:
    """One configuration of the lessons' parameters; ``threads=None`` keeps the lesson's own."""

    seed: int = 0
    pretrain_seed: int = 0
    threads: int | None = None

    @property
    def name(self) -> str:
        parts = [f"seed={self.seed}"]
        if self.pretrain_seed:
            parts.append(f"pretrain_seed={self.pretrain_seed}")
        if self.threads is not None:
            parts.append(f"threads={self.threads}")
        return ",".join(parts)

    @property
    def label(self) -> str:
        """A table column: ``"s1 p1"`` for SEED 1, PRETRAIN_SEED 1 (``t2``: THREADS 2)."""
        return " ".join([f"s{self.seed}"] + [f"p{self.pretrain_seed}"] * bool(self.pretrain_seed)
                        + [f"t{self.threads}"] * (self.threads is not None))


#: Issue 12's configurations: lesson seeds 0-4; seeds 0-1 with another pre-trained network; and
#: the committed parameters on the other thread count (lessons are committed with THREADS = 1).
CONFIGS = (*(Config(seed=s) for s in range(5)), Config(0, 1), Config(1, 1), Config(threads=2))


def parse_config(text: str) -> Config:
    """``"seed=1,pretrain_seed=1"`` -> ``Config(1, 1)``; unnamed keys keep their defaults."""
    values = {}
    for item in text.split(","):
        key, sep, value = item.strip().partition("=")
        if key not in KEYS or not sep:
            raise ValueError(f"--config {text!r}: {item.strip()!r} is not key=value with a key "
                             f"among {', '.join(map(repr, KEYS))}; e.g. seed=1,pretrain_seed=1")
        if key in values:
            raise ValueError(f"--config {text!r} names {key!r} twice")
        try:
            values[key] = int(value)
        except ValueError:
            raise ValueError(f"--config {text!r}: {key}={value!r} is not an integer") from None
        if values[key] < (1 if key == "threads" else 0):
            raise ValueError(f"--config {text!r}: {key}={values[key]} is out of range "
                             f"({'threads >= 1' if key == 'threads' else 'seeds are >= 0'})")
    return Config(**values)


def lesson_parameters(config: Config, defined: dict[str, str]) -> dict:
    """The values ``config`` gives a lesson whose parameters cell defines ``defined``
    (name -> default, as source text, e.g. ``{"SEED": "0", "SEEDS": "(0, 1, 2)"}``)."""
    params = {}
    if "SEED" in defined:
        params["SEED"] = config.seed
    if "SEEDS" in defined:
        try:
            n = len(ast.literal_eval(defined["SEEDS"]))
        except (ValueError, SyntaxError, TypeError):
            raise ValueError(f"SEEDS = {defined['SEEDS']} is not a literal tuple of seeds; "
                             "write it out, e.g. SEEDS = (0, 1, 2), so the harness can count "
                             "it") from None
        params["SEEDS"] = tuple(range(10 * config.seed, 10 * config.seed + n))
    if "PRETRAIN_SEED" in defined:
        params["PRETRAIN_SEED"] = config.pretrain_seed
    if "THREADS" in defined and config.threads is not None:
        params["THREADS"] = config.threads
    return params


def defined_parameters(path: Path) -> dict[str, str]:
    """The names the lesson's ``parameters`` cell assigns, with their default source text."""
    import papermill

    logger = logging.getLogger("papermill")  # quiet about lines it cannot parse (a, b = 1, 2)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return {name: p["default"] for name, p in papermill.inspect_notebook(str(path)).items()}
    finally:
        logger.setLevel(level)


def parameterized(path: Path, params: dict):
    """The lesson with papermill's injected-parameters cell after its ``parameters`` cell."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook
    from papermill.translators import PythonTranslator, papermill_translators

    class TupleTranslator(PythonTranslator):
        """papermill writes a tuple as a string ("(10, 11)"); SEEDS must stay a tuple."""

        @classmethod
        def translate(cls, val):
            if isinstance(val, tuple):
                return "(" + "".join(f"{cls.translate(v)}, " for v in val).rstrip(" ") + ")"
            return super().translate(val)

    papermill_translators.register("python", TupleTranslator)
    nb = load_notebook_node(str(path))  # papermill's reader: adds the metadata it relies on
    return parameterize_notebook(nb, params, kernel_name="python3", language="python")


# ---------------------------------------------------------------------------------------------
# Counting the assert cells of an executed notebook

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def has_assert(source: str) -> bool:
    """Whether a code cell's source contains an ``assert`` statement."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython syntax (%magic, !shell): look at the lines instead
        return bool(re.search(r"^\s*assert\b", source, re.M))
    return any(isinstance(node, ast.Assert) for node in ast.walk(tree))


def error_line(output) -> str:
    """``"AssertionError: message"``; an empty message gives the failing source line instead."""
    message = (output.get("evalue") or "").strip().splitlines()
    if message:
        return f"{output['ename']}: {message[0]}"
    for line in output.get("traceback", []):
        for row in ANSI.sub("", line).splitlines():
            if row.lstrip().startswith("---->") or row.lstrip().startswith("->"):
                return f"{output['ename']} at: {row.split(maxsplit=2)[-1].strip()}"
    return output["ename"]


@dataclass
class Score:
    """What one executed lesson shows: assert cells, how many held, and every failure."""

    total: int = 0
    held: int = 0
    failures: list[str] = field(default_factory=list)  # "cell 24 (id ...): AssertionError: ..."
    errors: int = 0  # cells that raised (with or without an assert) or never ran

    def as_dict(self) -> dict:
        return {"total": self.total, "held": self.held, "failures": self.failures,
                "errors": self.errors}


def score(nb) -> Score:
    """Count the assert cells of an executed notebook and name every cell that failed.

    Cell indices are the lesson's own: papermill's injected cell is not counted. In a lesson
    stopped early, a cell with no execution count never ran."""
    result = Score()
    stopped = nb.metadata.get("claims", {}).get("stopped")
    index = -1
    for cell in nb.cells:
        if "injected-parameters" in cell.metadata.get("tags", []):
            continue
        index += 1
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        asserts = has_assert(cell.source)
        result.total += asserts
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        where = f"cell {index} (id {cell.get('id', '?')})"
        if errors:
            result.failures.append(f"{where}: {error_line(errors[0])}")
        elif cell.get("execution_count") is None and stopped:
            result.failures.append(f"{where}: not run ({stopped})")
        else:
            result.held += asserts
            continue
        result.errors += 1
    return result


# ---------------------------------------------------------------------------------------------
# Executing


def execute(src: Path, dst: Path, timeout: float, cwd: Path) -> None:
    """Execute notebook ``src`` top to bottom, every cell even after errors, into ``dst``.
    After ``timeout`` seconds in all (or if the kernel dies) the rest is left unrun, and the
    notebook's metadata says why."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    nb = nbformat.read(src, as_version=4)
    deadline = time.monotonic() + timeout
    client = NotebookClient(nb, kernel_name="python3", allow_errors=True,
                            timeout_func=lambda cell: max(1, int(deadline - time.monotonic())),
                            resources={"metadata": {"path": str(cwd)}})
    try:
        client.execute()
    except CellTimeoutError:
        nb.metadata["claims"] = {"stopped": "the lesson timed out"}
    except DeadKernelError:  # e.g. killed for memory: the cells after it never ran
        nb.metadata["claims"] = {"stopped": "the kernel died"}
    nbformat.write(nb, dst)


def shared_data_root(out: Path) -> Path:
    """A data root for the run's kernels: links to the real root's entries, a copy of its
    ``pretrained/`` (a lesson that trains and caches a network then writes into the copy)."""
    real = Path(os.environ.get("FTCORE_DATA") or ROOT / "datasets").resolve()
    root = out / "data"
    (root / "pretrained").mkdir(parents=True, exist_ok=True)
    for entry in sorted(real.iterdir()) if real.is_dir() else ():
        target = root / entry.name
        if entry.name == "pretrained":
            shutil.copytree(entry, target, dirs_exist_ok=True)
        elif not (target.exists() or target.is_symlink()):
            target.symlink_to(entry)
    return root


@dataclass
class Job:
    lesson: Path
    config: Config
    params: dict
    also: list[Config] = field(default_factory=list)  # configurations that give the same values


def run_job(job: Job, out: Path, data: Path, timeout: float) -> dict:
    """Parameterize and execute one lesson in a child process; return its score and times."""
    import nbformat

    folder = out / job.lesson.stem
    folder.mkdir(parents=True, exist_ok=True)
    src = folder / f"{job.config.name.replace(',', '_')}.in.ipynb"
    dst = folder / f"{job.config.name.replace(',', '_')}.ipynb"
    nbformat.write(parameterized(job.lesson, job.params), src)
    env = {**os.environ, "FTCORE_PROGRESS": "0", "FTCORE_DATA": str(data),
           "PYDEVD_DISABLE_FILE_VALIDATION": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    code = ("import json, resource, sys; sys.path.insert(0, sys.argv[1]); "
            "from pathlib import Path; from claims import execute; "
            "execute(Path(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4]), Path(sys.argv[5])); "
            "r = resource.getrusage(resource.RUSAGE_CHILDREN); "
            "print(json.dumps({'cpu': r.ru_utime + r.ru_stime, 'mib': r.ru_maxrss / 1024}))")
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", code, str(Path(__file__).parent), str(src),
                              str(dst), str(timeout), str(job.lesson.parent)],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        stdout, stderr = child.communicate(timeout=timeout + 120)   # the child stops at timeout
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        stdout, stderr = child.communicate()
    seconds = time.perf_counter() - start
    src.unlink()
    if child.returncode != 0 or not dst.exists():
        tail = (stderr.strip().splitlines() or ["(no message)"])[-1]
        result = Score(failures=[f"the harness could not execute it: {tail}"], errors=1)
        return {"score": result, "seconds": seconds, "cpu": None, "mib": None}
    usage = json.loads(stdout.strip().splitlines()[-1])
    return {"score": score(nbformat.read(dst, as_version=4)), "seconds": seconds, **usage}


def plan(lessons: list[Path], configs: list[Config]) -> tuple[list[Job], list[str]]:
    """One job per lesson and distinct parameter values; notes on parameters a lesson lacks."""
    jobs, notes = [], []
    for lesson in lessons:
        defined = defined_parameters(lesson)
        missing = [n for n in ("SEED", "THREADS") if n not in defined]   # every lesson has them
        if missing:
            notes.append(f"{lesson.stem}: its parameters cell defines no {', '.join(missing)}: "
                         "the configurations cannot set it")
        seen: dict[tuple, Job] = {}
        for config in configs:
            params = lesson_parameters(config, defined)
            key = tuple(sorted(params.items()))
            if key in seen:
                seen[key].also.append(config)
            else:
                seen[key] = Job(lesson, config, params)
                jobs.append(seen[key])
    return jobs, notes


def table(lessons: list[Path], configs: list[Config], results: dict) -> str:
    """Rows: lessons; columns: configurations; cells "held/total" (! marks a failure), then the
    same grid of the kernels' CPU seconds (~ quiet wall time on one thread)."""
    width = max(9, *(len(c.label) + 2 for c in configs))
    head = "".join(c.label.rjust(width) for c in configs)
    lines = ["assert cells held / total".ljust(28) + head]
    for lesson in lessons:
        cells = (results[lesson, c]["score"] for c in configs)
        lines.append(lesson.stem[:26].ljust(28) + "".join(
            f"{s.held}/{s.total}{' !' if s.errors else ''}".rjust(width) for s in cells))
    lines += ["", "kernel CPU seconds".ljust(28) + head]
    for lesson in lessons:
        cpu = (results[lesson, c]["cpu"] for c in configs)
        lines.append(lesson.stem[:26].ljust(28) + "".join(
            ("-" if t is None else f"{t:.0f}").rjust(width) for t in cpu))
    lines.append("(s: SEED, p: PRETRAIN_SEED, t: THREADS; ! a cell failed: see below)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:5]))
    parser.add_argument("lessons", nargs="*", type=Path,
                        help="notebooks to run (default: every lessons/NN_*.ipynb)")
    parser.add_argument("--config", action="append", metavar="KEY=VALUE,...",
                        help="a configuration, e.g. seed=1,pretrain_seed=1 or threads=2 "
                             "(repeatable; default: issue 12's eight)")
    parser.add_argument("--jobs", type=int, default=2, help="lessons executed at a time")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds allowed per lesson and configuration")
    parser.add_argument("--out", type=Path,
                        help="keep the executed notebooks here (default: a temporary folder)")
    args = parser.parse_args(argv)

    try:
        configs = [parse_config(text) for text in args.config] if args.config else list(CONFIGS)
    except ValueError as error:
        parser.error(str(error))
    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: run at least 1 lesson at a time")
    if args.timeout <= 0:
        parser.error(f"--timeout {args.timeout}: give a positive number of seconds")
    lessons = [p.resolve() for p in args.lessons] or sorted(LESSONS.glob("[0-9][0-9]_*.ipynb"))
    bad = [str(p) for p in lessons if p.suffix != ".ipynb" or not p.is_file()]
    if bad or not lessons:
        parser.error(f"not a notebook: {', '.join(bad)}" if bad else f"no lessons in {LESSONS}")
    if args.out is not None and args.out.resolve().is_relative_to(LESSONS):
        parser.error(f"--out {args.out} is inside lessons/; give a folder elsewhere")
    configs = list(dict.fromkeys(configs))
    try:
        jobs, notes = plan(lessons, configs)
    except ValueError as error:
        parser.error(str(error))

    out = args.out.resolve() if args.out else Path(tempfile.mkdtemp(prefix="claims-"))
    out.mkdir(parents=True, exist_ok=True)
    data = shared_data_root(out)
    print(f"{len(jobs)} runs ({len(lessons)} lessons x {len(configs)} configurations), "
          f"{args.jobs} at a time; notebooks in {out}" + ("" if args.out else " (deleted after)"),
          flush=True)
    results = {}
    try:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = {pool.submit(run_job, job, out, data, args.timeout): job for job in jobs}
            for done, future in enumerate(as_completed(futures), 1):
                job, result = futures[future], future.result()
                for config in (job.config, *job.also):
                    results[job.lesson, config] = result
                s, cpu = result["score"], result["cpu"]
                same = f" (= {', '.join(c.name for c in job.also)})" if job.also else ""
                cpu_text = ("" if cpu is None else
                            f", kernel CPU {cpu:.0f} s, {result['mib']:.0f} MiB")
                print(f"[{done}/{len(jobs)}] {job.lesson.stem} {job.config.name}{same}: "
                      f"{s.held}/{s.total} assert cells held, {s.errors} cells failed "
                      f"({result['seconds']:.0f} s{cpu_text})", flush=True)
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)

    print()
    print(table(lessons, configs, results))
    for note in notes:
        print("note:", note)
    failed = False
    for job in jobs:
        s = results[job.lesson, job.config]["score"]
        for failure in s.failures:
            failed = True
            names = ", ".join(c.name for c in (job.config, *job.also))
            print(f"FAILED {job.lesson.stem} [{names}] {failure}")
    print("every cell ran without an error in every configuration" if not failed else
          "some claims did not hold (above)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
