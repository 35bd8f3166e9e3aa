"""The exercise framework: checks, the student edition, grading, and every lesson's section."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from helpers import exercise_section, run_exercise_section, square_exercise

from ftcore.exercises import EXERCISES, Incorrect, NotAttempted, check, get, hint
from ftcore.exercises.checks import ExerciseError, run_check
from ftcore.exercises.edition import (
    MarkerError,
    checked_ids,
    exercise_start,
    grade,
    solution_ids,
    strip_solutions,
    student_edition,
    write_student_edition,
)

LESSONS = Path(__file__).resolve().parents[1] / "lessons"
NOTEBOOKS = sorted(LESSONS.glob("[0-9][0-9]_*.ipynb"))


SQUARE = square_exercise()


def test_a_correct_answer_passes_with_one_line():
    assert run_check(SQUARE, lambda x: x * x) == "✓ Exercise 00.1 (Square a number): passed."


def test_the_stub_is_reported_as_not_done_with_the_hint():
    def stub(x):
        raise NotImplementedError("Exercise 00.1: multiply x by itself")

    with pytest.raises(NotAttempted, match="not done yet.*Hint: multiply x by itself"):
        run_check(SQUARE, stub)
    with pytest.raises(NotAttempted, match="no answer"):
        run_check(SQUARE, None)


def test_a_wrong_answer_gets_the_checks_message_and_no_answer():
    with pytest.raises(Incorrect) as caught:
        run_check(SQUARE, lambda x: -x)
    assert str(caught.value) == ("Exercise 00.1 is not yet right: the result must be positive "
                                 "for a positive input")
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_crash_in_the_students_code_names_the_error_and_the_students_line():
    def square(x):
        return x.squared()

    with pytest.raises(Incorrect, match=r"raised AttributeError: .*squared.* \(in `square`, "
                                        r"line \d+: `return x.squared\(\)`\)"):
        run_check(SQUARE, square)


def test_a_crash_inside_a_library_is_located_at_the_students_call():
    import torch

    def square(x):
        return torch.ones(2, dtype=torch.long).norm() * x

    with pytest.raises(Incorrect, match=r"\(in `square`, line \d+: `return torch.ones"):
        run_check(SQUARE, square)


def test_exercise_errors_render_in_jupyter_as_one_line_without_a_traceback():
    error = Incorrect("00.1", "the result must be positive")
    lines = error._render_traceback_()
    assert len(lines) == 1 and "✗ Exercise 00.1 is not yet right: the result must be" in lines[0]
    assert isinstance(error, AssertionError) and isinstance(error, ExerciseError)


def test_unknown_exercise_ids_list_the_known_ones():
    with pytest.raises(KeyError, match="no exercise '99.9'; the exercises are"):
        get("99.9")


def test_check_and_hint_print_for_a_registered_exercise(capsys):
    exercise_id, exercise = next(iter(EXERCISES.items()))
    hint(exercise_id)
    assert exercise.hint in capsys.readouterr().out
    with pytest.raises(NotAttempted, match="Hint"):
        check(exercise_id, None)


# The student edition ------------------------------------------------------------------------

SOLVED = '''def square(x):
    """x squared."""
    # BEGIN SOLUTION 00.1
    y = x * x
    return y
    # END SOLUTION

print("kept")'''


def test_solutions_become_a_stub_with_the_hint_at_the_same_indentation():
    student = strip_solutions(SOLVED, {"00.1": "multiply x by 'itself'"})
    assert "x * x" not in student and "SOLUTION" not in student
    assert student.splitlines()[:2] == ['def square(x):', '    """x squared."""']
    assert '    raise NotImplementedError("Exercise 00.1: multiply x by \'itself\'")' in student
    assert student.endswith('print("kept")')
    namespace = {}
    exec(student, namespace)  # the stub is valid Python
    with pytest.raises(NotImplementedError, match="itself"):
        namespace["square"](2)


@pytest.mark.parametrize("source, problem", [
    (SOLVED.replace("00.1", "00.7"), "no exercise '00.7'"),
    (SOLVED.replace("    # END SOLUTION\n", ""), "never closed"),
    ("# END SOLUTION", "without a BEGIN"),
    (SOLVED.replace("    y = x * x", "    # BEGIN SOLUTION 00.1"), "inside the solution"),
])
def test_broken_markers_are_errors_that_say_where(source, problem):
    with pytest.raises(MarkerError, match=problem) as caught:
        strip_solutions(source, {"00.1": "h"}, where="lesson.ipynb, cell 4")
    assert "lesson.ipynb, cell 4" in str(caught.value)


def _toy_notebook():
    cells = [nbformat.v4.new_code_cell("print(1)", outputs=[nbformat.v4.new_output(
                 "stream", text="1\n")], execution_count=1),
             nbformat.v4.new_markdown_cell("## Exercises\n\nTry these."),
             nbformat.v4.new_code_cell(SOLVED, outputs=[nbformat.v4.new_output(
                 "stream", text="kept\n")], execution_count=2),
             nbformat.v4.new_code_cell('check("00.1", square)')]
    return nbformat.v4.new_notebook(cells=cells)


def test_student_edition_clears_exercise_outputs_only_and_leaves_the_original_alone():
    nb = _toy_notebook()
    student = student_edition(nb, {"00.1": "a hint"})
    assert exercise_start(nb) == 1
    assert student.cells[0].outputs == nb.cells[0].outputs  # the lesson's figures stay
    assert student.cells[2].outputs == [] and student.cells[2].execution_count is None
    assert "x * x" in nb.cells[2].source and "x * x" not in student.cells[2].source
    assert solution_ids(nb) == ["00.1"] and solution_ids(student) == []
    assert checked_ids(student) == ["00.1"]


def test_write_student_edition_refuses_to_overwrite_solutions_or_earlier_work(tmp_path):
    lessons = tmp_path / "lessons"
    lessons.mkdir()
    nbformat.write(_toy_notebook(), lessons / "01_toy.ipynb")
    with pytest.raises(ValueError, match="the lessons with their solutions"):
        write_student_edition(lessons, lessons / ".." / "lessons")
    with pytest.raises(FileNotFoundError, match="no lessons"):
        write_student_edition(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(MarkerError, match="no exercise '00.1'"):  # not a registered exercise
        write_student_edition(lessons, tmp_path / "out")


def test_write_student_edition_writes_every_lesson(tmp_path):
    written = write_student_edition(LESSONS, tmp_path / "student")
    assert [path.name for path in written] == [path.name for path in NOTEBOOKS]
    for path in written:
        nb = nbformat.read(path, as_version=4)
        assert solution_ids(nb) == [] and "BEGIN SOLUTION" not in path.read_text()
    with pytest.raises(FileExistsError, match="--force"):
        write_student_edition(LESSONS, tmp_path / "student")
    assert write_student_edition(LESSONS, tmp_path / "student", overwrite=True) == written


# Every lesson's exercises -------------------------------------------------------------------

@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name[:2])
def test_every_registered_exercise_has_a_solution_and_a_check_in_its_lesson(path):
    nb = nbformat.read(path, as_version=4)
    registered = [key for key in EXERCISES if key.startswith(path.name[:2] + ".")]
    assert 2 <= len(registered) <= 4, f"{path.name}: {len(registered)} exercises"
    assert solution_ids(nb) == registered
    assert checked_ids(nb) == registered
    assert exercise_start(nb) < len(nb.cells) - len(registered)
    assert all(len(list(checked_ids(nbformat.v4.new_notebook(cells=[cell])))) <= 1
               for cell in nb.cells), "one check per cell, so the grader can attribute it"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name[:2])
def test_solution_edition_passes_every_check(path):
    results = run_exercise_section(path)
    assert results == {key: "passed" for key in solution_ids(nbformat.read(path, as_version=4))}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name[:2])
def test_student_edition_fails_every_check_with_its_hint(path):
    results = run_exercise_section(path, student=True)
    assert set(results) == set(solution_ids(nbformat.read(path, as_version=4)))
    for key, error in results.items():
        assert isinstance(error, NotAttempted), (key, error)
        assert get(key).hint in str(error)


# Grading in a real kernel ---------------------------------------------------------------------

def test_grade_runs_notebooks_and_reports_each_exercise(tmp_path):
    first = NOTEBOOKS[0]
    solved, student = tmp_path / "solved.ipynb", tmp_path / "student.ipynb"
    nbformat.write(exercise_section(first, student=False), solved)
    nbformat.write(exercise_section(first, student=True), student)
    records = grade([solved, student], timeout=120, save_to=tmp_path / "executed")
    ids = solution_ids(nbformat.read(first, as_version=4))
    assert [(r["notebook"], r["exercise"]) for r in records] == (
        [("solved.ipynb", key) for key in ids] + [("student.ipynb", key) for key in ids])
    assert all(r["status"] == "passed" for r in records[:len(ids)])
    for record in records[len(ids):]:
        assert record["status"] == "not done", record
        assert get(record["exercise"]).hint in record["message"]
    # What the student sees in Jupyter: the one-line verdict, not a traceback into ftcore.
    nb = nbformat.read(tmp_path / "executed" / "student.ipynb", as_version=4)
    errors = [output for cell in nb.cells for output in cell.get("outputs", [])
              if output.output_type == "error"]
    assert len(errors) == len(ids)
    for error in errors:
        assert len(error.traceback) == 1 and "✗ Exercise" in error.traceback[0]
        assert "ftcore" not in error.traceback[0]


def test_grade_reports_a_submission_that_runs_too_long_and_goes_on(tmp_path):
    slow = tmp_path / "slow.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import time\ntime.sleep(30)"),
        nbformat.v4.new_code_cell('from ftcore.exercises import check\ncheck("01.1", f)')]),
        slow)
    records = grade([slow], timeout=2)
    assert [r["exercise"] for r in records] == [k for k in EXERCISES if k.startswith("01.")]
    assert all(r["status"] == "not run" and "CellTimeoutError" in r["message"] for r in records)


def test_grade_reruns_the_checks_a_printed_tick_or_a_deleted_exercise_does_not_pass(tmp_path):
    nb = exercise_section(NOTEBOOKS[0], student=False)
    first, second, *rest = solution_ids(nb)
    keep = []
    for cell in nb.cells:
        if f"SOLUTION {second}" in cell.source or f'check("{second}"' in cell.source:
            continue  # the student deleted exercise `second`
        if f'check("{first}"' in cell.source:  # ...and faked `first`'s verdict
            cell.source = f'print("✓ Exercise {first} (faked): passed.")'
        keep.append(cell)
    nb.cells = keep + [nbformat.v4.new_code_cell(
        f"{checked_function(keep, first)} = lambda *args, **kwargs: 0")]
    path = tmp_path / "tampered.ipynb"
    nbformat.write(nb, path)
    status = {r["exercise"]: r["status"] for r in grade([path], timeout=120)}
    assert status == {first: "incorrect", second: "missing", **{key: "passed" for key in rest}}


def checked_function(cells, exercise_id: str) -> str:
    """The name of the function whose body holds ``exercise_id``'s solution."""
    from ftcore.exercises.edition import answer_names

    return answer_names(nbformat.v4.new_notebook(cells=cells))[exercise_id]
