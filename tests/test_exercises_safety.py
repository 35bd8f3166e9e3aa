"""Grading and the student edition never lose a student's work nor leak a solution (issue 16).

Each test is one way an instructor's run went wrong before: an output folder over the
submissions, indistinguishable rows, one corrupt notebook ending the run, deleted exercises
without a row, a leaked solution, a partial edition, a check that hangs, a function that edits
its inputs, a forgotten ``return`` reported as a crash.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
import torch
from helpers import exercise_section, square_exercise
from sklearn.metrics import balanced_accuracy_score

from ftcore.exercises import EXERCISES, Incorrect, check, get, run_check
from ftcore.exercises.checks import Exercise, expect
from ftcore.exercises.edition import (
    MarkerError,
    grade,
    solution_ids,
    strip_solutions,
    student_edition,
    write_student_edition,
)
from ftcore.train import confident_mistakes

LESSONS = Path(__file__).resolve().parents[1] / "lessons"
FIRST = sorted(LESSONS.glob("[0-9][0-9]_*.ipynb"))[0]


# check(): a time limit, and verdicts on what the function returned ----------------------------

SQUARE = square_exercise()


def test_a_check_stops_a_function_that_never_returns():
    def forever(x):
        while True:
            pass

    with pytest.raises(Incorrect, match=r"ran over 0.5 s and was stopped: is there a loop"):
        run_check(SQUARE, forever, time_limit_s=0.5)
    assert run_check(SQUARE, lambda x: x * x, time_limit_s=0.5).endswith("passed.")


def test_check_takes_a_time_limit(capsys):
    def forever(*args, **kwargs):
        while True:
            pass

    with pytest.raises(Incorrect, match="ran over 0.2 s"):
        check("10.3", forever, time_limit=0.2)


def test_the_time_limit_works_in_a_jupyter_kernel():
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from ftcore.exercises import check\ndef choose_lr(records):\n    while True:\n"
        "        pass\ncheck('10.3', choose_lr, time_limit=1)")])
    NotebookClient(nb, timeout=60, kernel_name="python3", allow_errors=True).execute()
    (error,) = nb.cells[0].outputs
    assert error.ename == "Incorrect" and "ran over 1 s and was stopped" in error.evalue


def test_a_forgotten_return_is_said_as_such_not_as_a_crash():
    def square(x):
        x * x

    with pytest.raises(Incorrect, match=r"returned None: did you forget `return`\?") as caught:
        run_check(SQUARE, square)
    assert "raised TypeError" not in str(caught.value)
    with pytest.raises(Incorrect, match=r"returned None: did you forget `return`\?"):
        run_check(get("03.1"), lambda model, images, labels, batch_size=256: None)


def test_a_result_of_the_wrong_type_or_shape_is_described():
    shaped = Exercise("00.2", "A 2x2 matrix", "reshape",
                      lambda f: expect(f(4).reshape(2, 2).sum() > 0, "must be positive"))
    with pytest.raises(Incorrect, match=r"returned a tensor of shape \(3,\), dtype float32, "
                                        r"which is not what the exercise asks for") as caught:
        run_check(shaped, lambda n: torch.ones(3))
    assert "your code raised" not in str(caught.value)
    with pytest.raises(Incorrect, match=r"returned a tensor of shape \(2, 3\)"):
        run_check(get("10.3"), lambda records: torch.zeros(2, 3))


def test_an_error_in_the_students_own_code_is_still_located_there():
    def square(x):
        return x.squared()

    with pytest.raises(Incorrect, match=r"your code raised AttributeError.*\(in `square`"):
        run_check(SQUARE, square)


# Inputs the task says to leave alone ---------------------------------------------------------

def _sorting_in_place(function):
    """``function``, but it first sorts its first two arguments in place, jointly (a change the
    answer does not depend on, so only a mutation check can see it)."""
    def answer(first, second, *rest):
        order = first.argsort()
        first[:] = first[order]
        second[:] = second[order]
        return function(first, second, *rest)

    return answer


def test_most_confident_mistakes_that_reorders_its_inputs_is_reported():
    def mistakes(logits, labels, k):
        result = confident_mistakes(logits, labels, k)
        logits.mul_(0)                       # "free memory" by zeroing the caller's logits
        return result

    with pytest.raises(Incorrect, match=r"changed `logits` or `labels` in place"):
        run_check(get("03.3"), mistakes)
    assert run_check(get("03.3"), confident_mistakes).endswith("passed.")


def test_balanced_accuracy_that_sorts_its_inputs_in_place_is_reported():
    def balanced(labels, predicted, num_classes):
        return balanced_accuracy_score(labels, predicted)

    assert run_check(get("10.2"), balanced).endswith("passed.")
    with pytest.raises(Incorrect, match=r"changed `labels` or `predicted` in place"):
        run_check(get("10.2"), _sorting_in_place(balanced))


# Markers: exactly right, or an error naming notebook and cell --------------------------------

SOLVED = '''def square(x):
    # BEGIN SOLUTION 00.1
    return x * x
    # END SOLUTION'''


@pytest.mark.parametrize("source", [
    SOLVED.replace("# BEGIN SOLUTION", "# begin solution"),
    SOLVED.replace("# END SOLUTION", "# end solution"),
    SOLVED.replace("# BEGIN SOLUTION 00.1", "### BEGIN SOLUTION"),
    SOLVED.replace("# BEGIN SOLUTION 00.1", "#BEGIN SOLUTION 00.1"),
    SOLVED.replace("# BEGIN SOLUTION 00.1", "# BEGIN_SOLUTION 00.1"),
])
def test_anything_marker_like_that_is_not_exactly_a_marker_is_an_error(source):
    with pytest.raises(MarkerError, match=r"10_x.ipynb, cell 3, line \d+: .* looks like a "
                                          r"solution marker"):
        strip_solutions(source, {"00.1": "h"}, where="10_x.ipynb, cell 3")


def _lesson(heading: str = "## Exercises", solution: str = SOLVED):
    solved = nbformat.v4.new_code_cell(solution + "\nprint(square(3))", execution_count=2,
                                       outputs=[nbformat.v4.new_output("stream", text="9\n")])
    return nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("print(1)", execution_count=1,
                                  outputs=[nbformat.v4.new_output("stream", text="1\n")]),
        nbformat.v4.new_markdown_cell(heading), solved,
        nbformat.v4.new_code_cell('check("00.1", square)')])


@pytest.mark.parametrize("heading", ["## Exercise", "# Exercises", "## exercises", "## Practice"])
def test_a_solution_cells_output_is_cleared_whatever_the_heading(heading):
    student = student_edition(_lesson(heading), {"00.1": "h"})
    assert student.cells[2].outputs == [] and "x * x" not in student.cells[2].source
    assert student.cells[0].outputs  # the lesson's own outputs stay


def test_a_solution_in_a_markdown_cell_is_an_error():
    nb = _lesson()
    nb.cells[1].source += "\n\n```python\n# BEGIN SOLUTION 00.1\nreturn x * x\n```"
    with pytest.raises(MarkerError, match=r"lesson.ipynb, cell 1 \(markdown\)"):
        student_edition(nb, {"00.1": "h"}, name="lesson.ipynb")


# The edition: never inside lessons/, all or nothing ------------------------------------------

def test_the_edition_refuses_a_folder_inside_the_lessons(tmp_path):
    with pytest.raises(ValueError, match="inside .*lessons"):
        write_student_edition(LESSONS, LESSONS / "student")
    assert not (LESSONS / "student").exists()
    folder = tmp_path / "course"
    folder.mkdir()
    nbformat.write(_lesson(), folder / "01_a.ipynb")
    with pytest.raises(ValueError, match="inside"):
        write_student_edition(folder, folder / "student")


def test_a_marker_error_in_a_later_lesson_leaves_no_partial_edition(tmp_path, monkeypatch):
    monkeypatch.setitem(EXERCISES, "00.1", SQUARE)
    folder = tmp_path / "course"
    folder.mkdir()
    nbformat.write(_lesson(), folder / "01_good.ipynb")
    nbformat.write(_lesson(solution=SOLVED.replace("BEGIN", "Begin")), folder / "03_bad.ipynb")
    with pytest.raises(MarkerError, match="03_bad.ipynb, cell 2"):
        write_student_edition(folder, tmp_path / "student")
    assert not (tmp_path / "student").exists()
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "01_good.ipynb").write_text("the instructor's earlier edition")
    with pytest.raises(MarkerError):
        write_student_edition(folder, earlier, overwrite=True)
    assert (earlier / "01_good.ipynb").read_text() == "the instructor's earlier edition"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


# Grading: the submissions are never written over --------------------------------------------

def test_grade_refuses_to_save_over_or_beside_the_submissions(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    submission = subs / "10_student.ipynb"
    nbformat.write(exercise_section(FIRST, student=True), submission)
    before = submission.read_bytes()
    with pytest.raises(ValueError, match="holds the input"):
        grade([submission], exercises_only=True, save_to=subs)
    with pytest.raises(ValueError, match="holds the input"):
        grade([submission], exercises_only=True, save_to=tmp_path)
    with pytest.raises(ValueError, match="inside the repository's lessons"):
        grade([submission], exercises_only=True, save_to=LESSONS / "graded")
    (tmp_path / "saved").mkdir()
    (tmp_path / "saved" / "10_student.ipynb").write_text("kept")
    with pytest.raises(FileExistsError, match="10_student.ipynb"):
        grade([submission], exercises_only=True, save_to=tmp_path / "saved")
    assert submission.read_bytes() == before
    assert (tmp_path / "saved" / "10_student.ipynb").read_text() == "kept"


def test_every_submission_gets_rows_named_by_its_path_and_bad_ones_do_not_stop_the_run(tmp_path):
    name = FIRST.name
    ids = solution_ids(nbformat.read(FIRST, as_version=4))
    subs = tmp_path / "subs"
    for folder, student in (("a", False), ("b", True)):
        (subs / folder).mkdir(parents=True)
        nbformat.write(exercise_section(FIRST, student=student), subs / folder / name)
    corrupt = subs / "c" / name
    corrupt.parent.mkdir()
    corrupt.write_text('{"cells": [ truncated')
    deleted = exercise_section(FIRST, student=True)  # every exercise's code cells deleted
    deleted.cells = [cell for cell in deleted.cells if cell.cell_type == "markdown"]
    (subs / "d").mkdir()
    nbformat.write(deleted, subs / "d" / name)
    records = grade([subs / "a" / name, corrupt, subs / "b" / name, subs / "d" / name],
                    timeout=120, exercises_only=True, save_to=tmp_path / "graded")
    rows = [(r["notebook"], r["exercise"], r["status"]) for r in records]
    assert rows == ([(f"a/{name}", key, "passed") for key in ids]
                    + [(f"c/{name}", "-", "unreadable")]
                    + [(f"b/{name}", key, "not done") for key in ids]
                    + [(f"d/{name}", key, "missing") for key in ids])
    assert "not a readable notebook" in records[len(ids)]["message"]
    saved = {p.relative_to(tmp_path / "graded").as_posix()
             for p in (tmp_path / "graded").rglob("*.ipynb")}
    assert saved == {f"a/{name}", f"b/{name}", f"d/{name}"}
    assert corrupt.read_text() == '{"cells": [ truncated'
