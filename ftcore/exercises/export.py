"""The lessons' exercises as assignments for nbgrader and for otter-grader (Gradescope).

Both exports hold one assignment per lesson: the lesson's title and its exercise section (which
runs on its own, in seconds), each exercise's solution marked in the tool's own syntax, and a
test cell that calls our check, so students get the same one-line feedback as in the lessons::

    from ftcore.exercises import check
    check("04.1", new_head)

* ``nbgrader``: a course folder ``DIR/source/lessonNN/NN_name.ipynb`` (solution cells with
  ``### BEGIN SOLUTION`` markers, autograded test cells worth 1 point each, all with ``nbgrader``
  metadata) and ``DIR/nbgrader_config.py``. Then ``nbgrader generate_assignment lessonNN``.
* ``otter``: master notebooks ``DIR/lessonNN/NN_name.ipynb`` in otter-assign's format (an
  ``ASSIGNMENT CONFIG`` cell, one question per exercise with its solution and its test, 1 point
  each) and ``DIR/requirements.txt``. Then ``otter assign`` makes the student notebook and
  Gradescope's ``autograder.zip``.

The lesson body above the exercises (its experiments take up to a minute) and its Colab install
cell are left out: the assignment runs where the instructor installed ftcore.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path

from .edition import (
    BEGIN,
    CHECK,
    END,
    LESSON_GLOB,
    exercise_start,
    refuse_unsafe_output,
    solution_ids,
    strip_solutions,
    write_all,
)

FORMATS = ("nbgrader", "otter")
#: Where students' environments (otter's autograder image) get ftcore from: the lessons' own
#: Colab install cell names it; this is the fallback.
PACKAGE = "ftcore @ git+https://github.com/ftcore-lessons/ftcore-lessons.git"
POINTS = 1


@dataclass
class Part:
    """One exercise of a lesson: the cells that state it, its solution cell, its check cell."""

    id: str
    prompt: list = field(default_factory=list)
    solution: object = None
    check: object = None


@dataclass
class Section:
    """A lesson's exercise section, cut into the lesson's title, an introduction (the heading
    and the imports), the exercises, and what follows them (open questions)."""

    name: str
    title: object
    intro: list
    parts: list[Part]
    outro: list

    @property
    def lesson(self) -> str:
        return self.parts[0].id[:2]


def _clean(cell):
    cell = copy.deepcopy(cell)
    cell.metadata = {}
    if cell.cell_type == "code":
        cell.outputs, cell.execution_count = [], None
    return cell


def section(nb, name: str) -> Section:
    """The exercise section of the lesson ``nb`` (file ``name``), cut into its parts.

    Raises ``ValueError`` naming the notebook if an exercise lacks its solution or its check
    cell, or if a check cell does not follow its solution.
    """
    start = exercise_start(nb)
    if start == len(nb.cells) or not solution_ids(nb):
        raise ValueError(f"{name}: no '## Exercises' section with marked solutions")
    intro, parts, pending = [], [], []
    for index, cell in enumerate(nb.cells[start:], start=start):
        cell = _clean(cell)
        begins = [match["id"] for match in map(BEGIN.match, cell.source.splitlines()) if match]
        checks = ([match["id"] for match in CHECK.finditer(cell.source)]
                  if cell.cell_type == "code" else [])
        if begins:
            parts.append(Part(begins[0], prompt=pending, solution=cell))
            pending = []
        elif checks:
            if not parts or parts[-1].id != checks[0] or parts[-1].check is not None:
                raise ValueError(f"{name}, cell {index}: check({checks[0]!r}, ...) does not "
                                 f"follow the solution of exercise {checks[0]}")
            parts[-1].check = cell
        elif not parts and cell.cell_type == "code":  # the section's imports: the introduction
            intro, pending = intro + pending + [cell], []
        else:  # markdown states the next exercise (or, after the last, open questions)
            pending.append(cell)
    missing = [part.id for part in parts if part.check is None]
    if missing:
        raise ValueError(f"{name}: exercise {', '.join(missing)} has no check(...) cell")
    # the lesson's title, unless the notebook opens with the exercises (then it is their heading,
    # already in the section: exported twice, nbformat would find the same cell id twice)
    title = _clean(nb.cells[0]) if start > 0 and nb.cells[0].cell_type == "markdown" else None
    return Section(name, title, intro, parts, pending)


def _function(check_cell) -> str:
    return re.search(r"check\(\s*[\"']\d\d\.\d+[\"']\s*,\s*(\w+)", check_cell.source)[1]


def test_source(part: Part) -> str:
    """The test cell's source: our check on the student's function, with its own import (so a
    student who redefines ``check`` cannot change the verdict)."""
    return f'from ftcore.exercises import check\ncheck("{part.id}", {_function(part.check)})'


def _retag(source: str, begin: str, end: str) -> str:
    """``source`` with our markers rewritten as the tool's ``begin`` / ``end`` lines."""
    lines = []
    for line in source.splitlines():
        if match := BEGIN.match(line):
            lines.append(f"{match['indent']}{begin}")
        elif match := END.match(line):
            lines.append(line[:len(line) - len(line.lstrip())] + end)
        else:
            lines.append(line)
    return "\n".join(lines)


# --- nbgrader ---------------------------------------------------------------------------------

def _nbgrader(cell, grade_id: str, **flags):
    cell.metadata["nbgrader"] = {"grade": False, "solution": False, "locked": False,
                                 "task": False, "grade_id": grade_id, "schema_version": 3,
                                 **flags}
    return cell


def nbgrader_notebook(sec: Section):
    """The nbgrader source notebook of one lesson's exercises."""
    import nbformat

    new = nbformat.v4
    cells = [sec.title] if sec.title is not None else []
    cells += sec.intro
    for part in sec.parts:
        tag = part.id.replace(".", "_")
        cells += part.prompt
        solution = new.new_code_cell(_retag(part.solution.source, "### BEGIN SOLUTION",
                                            "### END SOLUTION"))
        cells.append(_nbgrader(solution, f"ex{tag}_solution", solution=True))
        test = new.new_code_cell(test_source(part))
        cells.append(_nbgrader(test, f"ex{tag}_check", grade=True, locked=True, points=POINTS))
    cells += sec.outro
    nb = new.new_notebook(cells=[copy.deepcopy(cell) for cell in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb


NBGRADER_CONFIG = '''# nbgrader's configuration for the ftcore lessons' exercises (`ftcore export`).
c = get_config()  # noqa: F821
c.CourseDirectory.course_id = "ftcore-lessons"
# The checks give one-line feedback; a cell may run a minute on a slow machine.
c.ExecutePreprocessor.timeout = 300
'''


# --- otter-grader ----------------------------------------------------------------------------

def _raw(text: str):
    import nbformat

    return nbformat.v4.new_raw_cell(text)


OTTER_CONFIG = """# ASSIGNMENT CONFIG
name: lesson{lesson}
requirements: requirements.txt
overwrite_requirements: false
init_cell: true
check_all_cell: false
export_cell: false
generate: true
tests:
  files: false
  ok_format: true"""


def otter_notebook(sec: Section):
    """The otter-assign master notebook of one lesson's exercises."""
    import nbformat

    from . import get

    new = nbformat.v4
    cells = [_raw(OTTER_CONFIG.format(lesson=sec.lesson))]
    cells += [sec.title] if sec.title is not None else []
    cells += sec.intro
    for part in sec.parts:
        cells.append(_raw(f"# BEGIN QUESTION\nname: ex{part.id.replace('.', '_')}\n"
                          f"points: {POINTS}"))
        cells += part.prompt or [new.new_markdown_cell(f"Exercise {part.id}")]
        cells.append(_raw("# BEGIN SOLUTION"))
        cells.append(new.new_code_cell(_retag(part.solution.source, "# BEGIN SOLUTION",
                                              "# END SOLUTION")))
        cells.append(_raw("# END SOLUTION"))
        cells.append(_raw("# BEGIN TESTS"))
        # otter's tests are doctests: the master's output is the expected one, the check's ✓.
        passed = f"✓ Exercise {part.id} ({get(part.id).title}): passed.\n"
        cells.append(new.new_code_cell(test_source(part), outputs=[
            new.new_output("stream", name="stdout", text=passed)]))
        cells.append(_raw("# END TESTS"))
        cells.append(_raw("# END QUESTION"))
    cells += sec.outro
    nb = new.new_notebook(cells=[copy.deepcopy(cell) for cell in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb


def _requirement(nb) -> str:
    """The ftcore requirement from the lesson's Colab install cell, else :data:`PACKAGE`."""
    for cell in nb.cells:
        if cell.source.startswith("# Colab only: install ftcore"):
            match = re.search(r"""%pip install[^"']*["'](?P<req>ftcore[^"']*)["']""",
                              cell.source)
            if match:
                return match["req"]
    return PACKAGE


# --- both -------------------------------------------------------------------------------------

def export(source: Path | str, out: Path | str, format: str) -> list[Path]:
    """Write every lesson's exercises in ``source`` as ``format`` assignments into ``out``.

    ``format`` is ``"nbgrader"`` or ``"otter"`` (see the module's docstring for the layouts).
    ``out`` must not exist yet or be empty (nothing is ever overwritten) and may not lie inside
    the lessons; all files are written or none. Returns the paths written.
    """
    import nbformat

    if format not in FORMATS:
        raise ValueError(f"format={format!r} is not one of {', '.join(map(repr, FORMATS))}")
    source, out = Path(source), Path(out)
    lessons = sorted(source.glob(LESSON_GLOB))
    if not lessons:
        raise FileNotFoundError(f"no lessons (files named like 01_*.ipynb) in {source}")
    refuse_unsafe_output(out, [source], "--out")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"--out {out} already exists and is not empty; export into a new "
                              f"folder (an export never overwrites)")
    from . import EXERCISES

    hints = {key: exercise.hint for key, exercise in EXERCISES.items()}
    files, names = {}, []
    for path in lessons:
        nb = nbformat.read(path, as_version=4)
        for index, cell in enumerate(nb.cells):
            strip_solutions(cell.source, hints, where=f"{path.name}, cell {index}")
        sec = section(nb, path.name)  # the markers were checked above, as strictly as for
        name = f"lesson{sec.lesson}"   # the student edition
        names.append(name)
        if format == "nbgrader":
            files[f"source/{name}/{path.name}"] = nbgrader_notebook(sec)
        else:
            files[f"{name}/{path.name}"] = otter_notebook(sec)
            files[f"{name}/requirements.txt"] = f"{_requirement(nb)}\n"
    if format == "nbgrader":
        files["nbgrader_config.py"] = NBGRADER_CONFIG.format(
            assignments=", ".join(f'{{"name": "{name}"}}' for name in names))
    return write_all(files, out)
