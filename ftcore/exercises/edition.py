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
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

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


def outcome(cell, exercise_id: str) -> tuple[str, str]:
    """(status, message) of a check cell after execution: passed / not done / incorrect / ..."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream" and f"✓ Exercise {exercise_id}" in output.text:
            return "passed", ""
        if output.get("output_type") == "error":
            message = output.get("evalue", "")
            status = {"NotAttempted": "not done", "Incorrect": "incorrect"}.get(output["ename"])
            return (status, message) if status else ("error", f"{output['ename']}: {message}")
    return "not run", "the check did not run (an earlier cell failed, or it was never executed)"


def grade(paths: Iterable[Path | str], timeout: int = 600, exercises_only: bool = False,
          save_to: Path | str | None = None) -> list[dict]:
    """Execute each notebook (errors allowed) and report every exercise it checks.

    With ``exercises_only``, only the exercise section runs (it is self-contained, so this is
    the fast way to grade many submissions). With ``save_to``, each executed notebook is written
    there under its own name, outputs and all, for the instructor to read. Returns one record
    per check: ``notebook``, ``exercise``, ``status`` (``passed``, ``not done``, ``incorrect``,
    ``error`` or ``not run``) and ``message``.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    records = []
    for path in map(Path, paths):
        nb = nbformat.read(path, as_version=4)
        if exercises_only:
            nb.cells = nb.cells[exercise_start(nb):]
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                                resources={"metadata": {"path": str(path.parent)}})
        stopped = None
        try:
            client.execute()
        except (CellTimeoutError, DeadKernelError) as error:  # one bad submission: go on
            stopped = f"execution stopped: {type(error).__name__} (a cell ran over {timeout} s " \
                      f"or the kernel died)"
        if save_to is not None:
            Path(save_to).mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, Path(save_to) / path.name)
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            for match in CHECK.finditer(cell.source):
                status, message = outcome(cell, match["id"])
                if status == "not run" and stopped:
                    message = stopped
                records.append(dict(notebook=path.name, exercise=match["id"], status=status,
                                    message=message))
    return records
