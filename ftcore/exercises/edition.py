"""The student edition of the lessons, and grading of submitted notebooks.

Solutions live in the lessons between markers, inside the body of the function a student writes::

    def frozen_fraction(model):
        # BEGIN SOLUTION 03.1
        ...
        # END SOLUTION

The student edition replaces each marked block with a stub that raises ``NotImplementedError``
carrying the exercise's hint, and clears the outputs of the exercise cells and of every cell that
held a solution (their ``✓ passed`` lines would give nothing away, but the solution's printed
results might). Markers are matched exactly: a line that looks like a marker and is not one
(``# begin solution 09.1``, ``### BEGIN SOLUTION``) is an error, so no solution can leak.

Neither tool writes over anything but its own output: not into ``lessons/``, not into a folder
holding one of its inputs, not over existing files (unless told to).
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from .checks import ExerciseError, NotAttempted, run_check

BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION (?P<id>\d\d\.\d+)[ \t]*$")
END = re.compile(r"^[ \t]*# END SOLUTION[ \t]*$")
#: Anything that looks like a marker, in any case or spelling: it must be exactly BEGIN or END.
MARKER_LIKE = re.compile(r"(BEGIN|END)[\s_-]*SOLUTION", re.IGNORECASE)
CHECK = re.compile(r"""\bcheck\(\s*["'](?P<id>\d\d\.\d+)["']""")
EXERCISES_HEADING = "## Exercises"
#: The section heading, read leniently (``# Exercise``, ``## exercises``): a misspelt heading must
#: not keep a solution's outputs in the student edition.
HEADING = re.compile(r"#{1,2}[ \t]+exercises?\b", re.IGNORECASE)
LESSON_GLOB = "[0-9][0-9]_*.ipynb"
#: The repository's lessons: no tool writes into them.
REPO_LESSONS = Path(__file__).resolve().parents[2] / "lessons"


class MarkerError(ValueError):
    """The solution markers in a notebook are unbalanced or name an unknown exercise."""


def stub(exercise_id: str, hint: str, indent: str) -> list[str]:
    """The lines that replace a solution: a comment and a ``NotImplementedError`` with the hint."""
    message = f"Exercise {exercise_id}: {hint}"
    return [f"{indent}# YOUR CODE HERE (exercise {exercise_id})",
            f"{indent}raise NotImplementedError({message!r})"]


def strip_solutions(source: str, hints: Mapping[str, str], where: str = "cell") -> str:
    """``source`` with every marked solution replaced by :func:`stub`.

    ``hints`` maps exercise ids to hints; an id not in it, a ``BEGIN`` without its ``END`` (or the
    reverse) and nested markers raise :class:`MarkerError` naming ``where``.
    """
    out: list[str] = []
    open_id = None
    for number, line in enumerate(source.splitlines(), start=1):
        begin = BEGIN.match(line)
        if not begin and not END.match(line) and MARKER_LIKE.search(line):
            raise MarkerError(f"{where}, line {number}: {line.strip()!r} looks like a solution "
                              f"marker but is not one; write exactly '# BEGIN SOLUTION NN.k' "
                              f"and '# END SOLUTION', each on a line of its own")
        if begin:
            if open_id is not None:
                raise MarkerError(f"{where}, line {number}: BEGIN SOLUTION {begin['id']} inside "
                                  f"the solution of {open_id}; close it with '# END SOLUTION'")
            open_id = begin["id"]
            if open_id not in hints:
                raise MarkerError(f"{where}, line {number}: no exercise {open_id!r} is defined in "
                                  f"ftcore.exercises; add it to lesson{open_id[:2]}.py")
            out.extend(stub(open_id, hints[open_id], begin["indent"]))
        elif END.match(line):
            if open_id is None:
                raise MarkerError(f"{where}, line {number}: '# END SOLUTION' without a BEGIN")
            open_id = None
        elif open_id is None:
            out.append(line)
    if open_id is not None:
        raise MarkerError(f"{where}: BEGIN SOLUTION {open_id} is never closed; add "
                          f"'# END SOLUTION' after the solution")
    return "\n".join(out)


def exercise_start(nb) -> int:
    """Index of the ``## Exercises`` markdown cell, or ``len(nb.cells)`` if there is none."""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and HEADING.match(cell.source.lstrip()):
            return index
    return len(nb.cells)


def solution_ids(nb) -> list[str]:
    """Exercise ids with a marked solution in ``nb``, in order."""
    return [match["id"] for cell in nb.cells if cell.cell_type == "code"
            for match in map(BEGIN.match, cell.source.splitlines()) if match]


def checked_ids(nb) -> list[str]:
    """Exercise ids that ``nb`` calls ``check(...)`` on, in order."""
    return [match["id"] for cell in nb.cells if cell.cell_type == "code"
            for match in CHECK.finditer(cell.source)]


def student_edition(nb, hints: Mapping[str, str] | None = None, name: str = "notebook"):
    """A copy of ``nb`` with solutions stubbed and the outputs cleared of the exercise section and
    of every cell that held a solution or calls a check; marker errors name ``name`` and the cell.
    """
    if hints is None:
        from . import EXERCISES
        hints = {key: exercise.hint for key, exercise in EXERCISES.items()}
    student = copy.deepcopy(nb)
    start = exercise_start(student)
    for index, cell in enumerate(student.cells):
        where = f"{name}, cell {index}"
        if cell.cell_type != "code":
            if MARKER_LIKE.search(cell.source):
                raise MarkerError(f"{where} ({cell.cell_type}): solution markers belong in code "
                                  f"cells only; remove the solution from this cell")
            continue
        stripped = strip_solutions(cell.source, hints, where=where)
        if index >= start or stripped != cell.source or CHECK.search(cell.source):
            cell.outputs = []
            cell.execution_count = None
        cell.source = stripped
    ids = solution_ids(nb)
    if ids:  # the grader reads the lesson from here even if the student deletes every exercise
        student.metadata["ftcore"] = {"lesson": ids[0][:2]}
    return student


def refuse_unsafe_output(out: Path, inputs: Iterable[Path], option: str) -> None:
    """Raise ``ValueError`` if the folder ``out`` lies inside the repository's ``lessons/`` or
    inside a lessons folder among ``inputs`` (folders), or holds one of the ``inputs`` (files)."""
    out = out.resolve()
    for path in map(Path, inputs):
        path = path.resolve()
        if path.is_dir() and out.is_relative_to(path):
            raise ValueError(f"{option} {out} lies inside {path}, the lessons with their "
                             f"solutions: writing there could replace them (and pytest would "
                             f"collect the copies); choose a folder outside it")
        if not path.is_dir() and path.is_relative_to(out):
            raise ValueError(f"{option} {out} holds the input {path}: the output could "
                             f"overwrite it; choose a folder that holds none of the inputs")
    if REPO_LESSONS.is_dir() and out.is_relative_to(REPO_LESSONS.resolve()):
        raise ValueError(f"{option} {out} lies inside the repository's lessons/: writing there "
                         f"could replace the lessons (and pytest would collect the copies); "
                         f"choose a folder outside it")


def write_all(files: Mapping[str, object], out: Path, overwrite: bool = False) -> list[Path]:
    """Write ``{relative path: notebook or text}`` into the folder ``out``, all or nothing.

    They are written to a temporary folder beside ``out`` first and moved into place once all
    are written, so an error leaves no partial output. Existing files are refused unless
    ``overwrite``. Returns the paths written.
    """
    import nbformat

    targets = [out / name for name in files]
    existing = [str(path.relative_to(out)) for path in targets if path.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{out} already holds {', '.join(existing)}; pass overwrite=True "
                              f"(--force) to replace them")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        for name, nb in files.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            if isinstance(nb, str):
                (staging / name).write_text(nb)
            else:
                nbformat.write(nb, staging / name)
        if not out.exists():
            os.replace(staging, out)
        else:
            for name in files:
                (out / name).parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return targets


def write_student_edition(source: Path | str, out: Path | str,
                          overwrite: bool = False) -> list[Path]:
    """Write the student edition of every lesson in ``source`` into the folder ``out``.

    Refuses to write into ``source`` (or a folder inside it: it would replace the solutions, and
    pytest would collect the stubs) and, unless ``overwrite``, over existing notebooks. Every
    edition is made before anything is written, and all are written or none (a marker error in
    the last lesson leaves no partial edition). Returns the paths written.
    """
    import nbformat

    source, out = Path(source), Path(out)
    lessons = sorted(source.glob(LESSON_GLOB))
    if not lessons:
        raise FileNotFoundError(f"no lessons (files named like 01_*.ipynb) in {source}")
    refuse_unsafe_output(out, [source], "--out")
    editions = {path.name: student_edition(nbformat.read(path, as_version=4), name=path.name)
                for path in lessons}
    return write_all(editions, out, overwrite=overwrite)


STUB = re.compile(r"# YOUR CODE HERE \(exercise (?P<id>\d\d\.\d+)\)")
CHECK_CALL = re.compile(r"""\bcheck\(\s*["'](?P<id>\d\d\.\d+)["']\s*,\s*(?P<name>[A-Za-z_]\w*)""")
DEF = re.compile(r"^\s*def (?P<name>[A-Za-z_]\w*)\(", re.MULTILINE)
GRADES = "FTCORE-GRADES "
#: The cell the grader appends: it re-runs every check in the submission's own kernel, on the
#: functions the submission defined (printed "✓" lines prove nothing; deleted checks show up).
GRADER_CELL = """import json as _json
from ftcore.exercises.edition import grade_namespace as _grade_namespace
print({marker!r} + _json.dumps(_grade_namespace(globals(), {answers!r})))"""


def answer_names(nb, lesson: str | None = None) -> dict[str, str | None]:
    """``{exercise id: name of the student's function}`` for every exercise of the lesson.

    The lesson is ``lesson`` (e.g. ``"09"``) or is read from the notebook: the student edition's
    metadata, else the exercise ids in its checks, solutions or stubs. The function is the one
    its ``check(...)`` cell passes or, failing that, the one whose body holds the solution or
    stub. ``None`` where neither is left (the student deleted them).
    """
    from . import EXERCISES

    names: dict[str, str | None] = {}
    for cell in (cell for cell in nb.cells if cell.cell_type == "code"):
        for match in CHECK_CALL.finditer(cell.source):
            names.setdefault(match["id"], match["name"])
        for match in [*map(BEGIN.search, cell.source.splitlines()), *STUB.finditer(cell.source)]:
            if match:
                head = cell.source[:cell.source.find(match.group(0))]
                defs = DEF.findall(head)
                names.setdefault(match["id"], defs[-1] if defs else None)
    lessons = {key[:2] for key in names}
    lessons |= {lesson or nb.metadata.get("ftcore", {}).get("lesson")} - {None}
    for key in EXERCISES:
        if key[:2] in lessons:
            names.setdefault(key, None)
    return dict(sorted(names.items()))


def grade_namespace(namespace: dict, answers: dict[str, str | None]) -> dict[str, list[str]]:
    """Run each exercise's check on the function ``namespace[answers[id]]``, in the kernel.

    Returns ``{id: [status, message]}``, status ``passed``, ``not done``, ``incorrect`` or
    ``missing`` (no such function: its cell was deleted, renamed or never run).
    """
    from . import get

    grades = {}
    for key, name in answers.items():
        if name is None or not callable(namespace.get(name)):
            what = f"`{name}`" if name else "the function"
            grades[key] = ["missing", f"{what} is not defined: was its cell deleted, renamed "
                                      f"or never run?"]
            continue
        try:
            run_check(get(key), namespace[name])
            grades[key] = ["passed", ""]
        except NotAttempted as error:
            grades[key] = ["not done", error.message]
        except ExerciseError as error:
            grades[key] = ["incorrect", error.message]
    return grades


def _grades_from(cell) -> dict[str, list[str]] | None:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream" and output.text.startswith(GRADES):
            return json.loads(output.text[len(GRADES):])
    return None


def submission_names(paths: Iterable[Path]) -> list[str]:
    """Each path relative to the folder all of them are in (``a/09.ipynb``, ``b/09.ipynb``)."""
    resolved = [path.resolve() for path in paths]
    if not resolved:
        return []
    common = Path(os.path.commonpath([path.parent for path in resolved]))
    return [path.relative_to(common).as_posix() for path in resolved]


def _lesson_of(path: Path) -> str | None:
    match = re.match(r"(\d\d)_", path.name)
    return match[1] if match else None


def grade(paths: Iterable[Path | str], timeout: int = 600, exercises_only: bool = False,
          save_to: Path | str | None = None) -> list[dict]:
    """Execute each notebook (errors allowed) and grade every exercise of its lesson.

    After the notebook's own cells, a grader cell re-runs each check in the same kernel on the
    student's function, so a printed "✓" proves nothing and a deleted exercise is reported as
    ``missing`` (the lesson is read from the notebook or, if every exercise was deleted, from the
    student edition's metadata or a file name like ``09_*.ipynb``). With ``exercises_only``,
    only the exercise section runs (it is self-contained: the fast way to grade many
    submissions). With ``save_to``, each executed notebook (without the grader cell) is written
    there under its name, outputs and all, for the instructor to read; ``save_to`` may not hold
    a submission nor lie inside ``lessons/``, and existing files there are refused, all checked
    before anything runs. Returns one record per exercise: ``notebook`` (its path relative to the
    folder all the notebooks are in), ``exercise``, ``status`` (``passed``, ``not done``,
    ``incorrect``, ``missing``, ``error``, ``not run``, or ``unreadable`` for a file that is no
    notebook, in one record with exercise ``-``) and ``message``. One bad submission never stops
    the others.
    """
    import nbformat
    from nbclient import NotebookClient

    paths = [Path(path) for path in paths]
    names = submission_names(paths)
    if len(set(names)) < len(names):
        twice = sorted({name for name in names if names.count(name) > 1})
        raise ValueError(f"the same notebook is given twice: {', '.join(twice)}")
    if save_to is not None:
        save_to = Path(save_to)
        refuse_unsafe_output(save_to, paths, "--save-to")
        existing = [name for name in names if (save_to / name).exists()]
        if existing:
            raise FileExistsError(f"--save-to {save_to} already holds {', '.join(existing)}; "
                                  f"choose an empty folder, so no earlier file is replaced")
    records = []
    for path, name in zip(paths, names, strict=True):
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception as error:  # not JSON, not a notebook, unreadable: one row, go on
            records.append(dict(notebook=name, exercise="-", status="unreadable",
                                message=f"not a readable notebook ({type(error).__name__}: "
                                        f"{str(error).splitlines()[0] if str(error) else ''})"))
            continue
        lesson = nb.metadata.get("ftcore", {}).get("lesson") or _lesson_of(path)
        if exercises_only:
            nb.cells = nb.cells[exercise_start(nb):]
        answers = answer_names(nb, lesson)
        if not answers:
            records.append(dict(notebook=name, exercise="-", status="missing",
                                message="no exercise found: the notebook calls no check(...) "
                                        "and its name does not start with a lesson number"))
            continue
        grader = nbformat.v4.new_code_cell(GRADER_CELL.format(marker=GRADES, answers=answers))
        nb.cells.append(grader)
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                                resources={"metadata": {"path": str(path.parent)}})
        problem = "the grader did not run"
        try:
            client.execute()
        except Exception as error:  # a timeout, a dead kernel...: report it and go on
            problem = (f"execution stopped: {type(error).__name__} (a cell ran over {timeout} s, "
                       f"or the kernel died or did not start)")
        nb.cells.pop()
        if save_to is not None:
            (save_to / name).parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, save_to / name)
        grades = _grades_from(grader)
        if grades is None:
            errors = [f"{o['ename']}: {o['evalue']}" for o in grader.get("outputs", [])
                      if o.get("output_type") == "error"]
            grades = {key: ["error" if errors else "not run", errors[0] if errors else problem]
                      for key in answers}
        records += [dict(notebook=name, exercise=key, status=status, message=message)
                    for key, (status, message) in grades.items()]
    return records
