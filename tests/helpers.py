"""Small things several test files need (pytest puts ``tests/`` on ``sys.path``)."""

from __future__ import annotations

import torch

from ftcore.data import ImageSet
from ftcore.models import SmallCNN

#: SmallCNN's body blocks, input to output.
BODY_BLOCKS = ["features.conv1", "features.conv2", "features.fc"]


def random_images(n: int, classes: int = 5, seed: int = 0) -> ImageSet:
    """``n`` random images (n, 1, 28, 28) in [0, 1] with labels 0, 1, .., classes-1 in turn."""
    g = torch.Generator().manual_seed(seed)
    return ImageSet(torch.rand(n, 1, 28, 28, generator=g), torch.arange(n) % classes,
                    tuple(str(c) for c in range(classes)), "tiny")


def tiny_cnn(num_classes: int = 10, seed: int = 0, **kwargs) -> SmallCNN:
    """A tiny SmallCNN (width 4, hidden 16) with reproducible initial weights; the global RNG is
    left alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SmallCNN(num_classes, **{"width": 4, "hidden": 16, **kwargs})


def run_exercise_section(path, student: bool = False) -> dict:
    """Execute a lesson's exercise section in-process, the solution or the student edition.

    Returns ``{exercise_id: "passed" | ExerciseError}`` for every ``check(...)`` cell; any other
    exception propagates (the section itself is broken).
    """
    import contextlib
    import io

    import nbformat

    from ftcore.exercises import ExerciseError
    from ftcore.exercises.edition import CHECK, exercise_start, student_edition

    nb = nbformat.read(path, as_version=4)
    if student:
        nb = student_edition(nb)
    namespace: dict = {"__name__": "__main__"}
    results: dict = {}
    for cell in nb.cells[exercise_start(nb):]:
        if cell.cell_type != "code":
            continue
        ids = [match["id"] for match in CHECK.finditer(cell.source)]
        try:
            with contextlib.redirect_stdout(io.StringIO()) as out:
                exec(compile(cell.source, f"<{path} exercises>", "exec"), namespace)
        except ExerciseError as error:
            results[ids[0] if ids else error.exercise_id] = error
            continue
        for exercise_id in ids:
            assert f"✓ Exercise {exercise_id}" in out.getvalue(), out.getvalue()
            results[exercise_id] = "passed"
    return results


def passes(exercise_id: str, answer) -> None:
    """Assert that ``answer`` passes exercise ``exercise_id``'s check."""
    from ftcore.exercises import get, run_check

    assert run_check(get(exercise_id), answer).startswith(f"✓ Exercise {exercise_id}")


def fails(exercise_id: str, answer, fragment: str) -> None:
    """Assert that ``answer`` fails the check as :class:`Incorrect`, its message matching the
    regular expression ``fragment``."""
    import pytest

    from ftcore.exercises import Incorrect, get, run_check

    with pytest.raises(Incorrect, match=fragment):
        run_check(get(exercise_id), answer)


def _positive(function):
    from ftcore.exercises import expect

    expect(function(3) > 0, "the result must be positive for a positive input")


def square_exercise():
    """A toy exercise, 00.1: its check wants a positive result for 3."""
    from ftcore.exercises.checks import Exercise

    return Exercise("00.1", "Square a number", hint="multiply x by itself", test=_positive)


def exercise_section(path, student: bool):
    """The exercise section of the lesson at ``path`` (its student edition if ``student``), as a
    notebook of its own."""
    import nbformat

    from ftcore.exercises.edition import exercise_start, student_edition

    nb = nbformat.read(path, as_version=4)
    if student:
        nb = student_edition(nb)
    nb.cells = nb.cells[exercise_start(nb):]
    return nb
