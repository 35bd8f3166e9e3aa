"""The student edition of the lessons, and grading of submitted notebooks.

Solutions live in the lessons between markers, inside the body of the function a student writes::

    def frozen_fraction(model):
        # BEGIN SOLUTION 03.1
        ...
        # END SOLUTION

The student edition replaces each marked block with a stub that raises ``NotImplementedError``
carrying the exercise's hint, and clears the outputs of the exercise cells (their ``✓ passed``
lines would give nothing away, but the solution's printed results might).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from .checks import ExerciseError, NotAttempted, run_check

BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION (?P<id>\d\d\.\d+)[ \t]*$")
END = re.compile(r"^[ \t]*# END SOLUTION[ \t]*$")
CHECK = re.compile(r"""\bcheck\(\s*["'](?P<id>\d\d\.\d+)["']""")
EXERCISES_HEADING = "## Exercises"
LESSON_GLOB = "[0-9][0-9]_*.ipynb"


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
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith(EXERCISES_HEADING):
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
    """A copy of ``nb`` with solutions stubbed and the exercise cells' outputs cleared."""
    if hints is None:
        from . import EXERCISES
        hints = {key: exercise.hint for key, exercise in EXERCISES.items()}
    student = copy.deepcopy(nb)
    start = exercise_start(student)
    for index, cell in enumerate(student.cells):
        if cell.cell_type != "code":
            continue
        cell.source = strip_solutions(cell.source, hints, where=f"{name}, cell {index}")
        if index >= start:
            cell.outputs = []
            cell.execution_count = None
    return student


def write_student_edition(source: Path | str, out: Path | str,
                          overwrite: bool = False) -> list[Path]:
    """Write the student edition of every lesson in ``source`` into the folder ``out``.

    Refuses to write into ``source`` itself (it would destroy the solutions) and, unless
    ``overwrite``, over existing notebooks. Returns the paths written.
    """
    import nbformat

    source, out = Path(source), Path(out)
    lessons = sorted(source.glob(LESSON_GLOB))
    if not lessons:
        raise FileNotFoundError(f"no lessons (files named like 01_*.ipynb) in {source}")
    if out.resolve() == source.resolve():
        raise ValueError(f"--out {out} is the lessons folder itself: writing there would replace "
                         f"the solutions; choose another folder")
    targets = [out / path.name for path in lessons]
    existing = [path.name for path in targets if path.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{out} already holds {', '.join(existing)}; pass overwrite=True "
                              f"(--force) to replace them")
    out.mkdir(parents=True, exist_ok=True)
    for path, target in zip(lessons, targets, strict=True):
        nb = nbformat.read(path, as_version=4)
        nbformat.write(student_edition(nb, name=path.name), target)
    return targets


STUB = re.compile(r"# YOUR CODE HERE \(exercise (?P<id>\d\d\.\d+)\)")
CHECK_CALL = re.compile(r"""\bcheck\(\s*["'](?P<id>\d\d\.\d+)["']\s*,\s*(?P<name>[A-Za-z_]\w*)""")
DEF = re.compile(r"^\s*def (?P<name>[A-Za-z_]\w*)\(", re.MULTILINE)
GRADES = "FTCORE-GRADES "
#: The cell the grader appends: it re-runs every check in the submission's own kernel, on the
#: functions the submission defined (printed "✓" lines prove nothing; deleted checks show up).
GRADER_CELL = """import json as _json
from ftcore.exercises.edition import grade_namespace as _grade_namespace
print({marker!r} + _json.dumps(_grade_namespace(globals(), {answers!r})))"""


def answer_names(nb) -> dict[str, str | None]:
    """``{exercise id: name of the student's function}`` for every exercise of the lesson.

    The lesson is read from the exercise ids in ``nb`` (its checks, solutions or stubs); the
    function is the one its ``check(...)`` cell passes or, failing that, the one whose body holds
    the solution or stub. ``None`` where neither is left (the student deleted them).
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


def grade(paths: Iterable[Path | str], timeout: int = 600, exercises_only: bool = False,
          save_to: Path | str | None = None) -> list[dict]:
    """Execute each notebook (errors allowed) and grade every exercise of its lesson.

    After the notebook's own cells, a grader cell re-runs each check in the same kernel on the
    student's function, so a printed "✓" proves nothing and a deleted exercise is reported as
    ``missing``. With ``exercises_only``, only the exercise section runs (it is
    self-contained: the fast way to grade many submissions). With ``save_to``, each executed
    notebook (without the grader cell) is written there, outputs and all, for the instructor to
    read. Returns one record per exercise: ``notebook``, ``exercise``, ``status`` (``passed``,
    ``not done``, ``incorrect``, ``missing``, ``error`` or ``not run``) and ``message``.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    records = []
    for path in map(Path, paths):
        nb = nbformat.read(path, as_version=4)
        if exercises_only:
            nb.cells = nb.cells[exercise_start(nb):]
        answers = answer_names(nb)
        if not answers:
            continue
        grader = nbformat.v4.new_code_cell(GRADER_CELL.format(marker=GRADES, answers=answers))
        nb.cells.append(grader)
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                                resources={"metadata": {"path": str(path.parent)}})
        problem = "the grader did not run"
        try:
            client.execute()
        except (CellTimeoutError, DeadKernelError) as error:  # one bad submission: go on
            problem = (f"execution stopped: {type(error).__name__} (a cell ran over {timeout} s "
                       f"or the kernel died)")
        nb.cells.pop()
        if save_to is not None:
            Path(save_to).mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, Path(save_to) / path.name)
        grades = _grades_from(grader)
        if grades is None:
            errors = [f"{o['ename']}: {o['evalue']}" for o in grader.get("outputs", [])
                      if o.get("output_type") == "error"]
            grades = {key: ["error" if errors else "not run", errors[0] if errors else problem]
                      for key in answers}
        records += [dict(notebook=path.name, exercise=key, status=status, message=message)
                    for key, (status, message) in grades.items()]
    return records
