"""Exercises with automatic feedback, and the student edition of the lessons.

In a lesson's exercise cells::

    from ftcore.exercises import check
    check("04.1", my_function)      # ✓ passed, or one line on what is wrong (no answer given)

Instructors: ``python -m ftcore student-edition --out DIR`` writes the lessons with every
solution replaced by a stub that raises ``NotImplementedError`` with a hint,
``python -m ftcore check NOTEBOOK...`` runs submitted notebooks and reports each exercise, and
``python -m ftcore export --format nbgrader|otter --out DIR`` writes the exercises as nbgrader or
otter-grader (Gradescope) assignments (:mod:`ftcore.exercises.export`).

Each lesson's exercises live in ``lessonNN.py`` as a list ``EXERCISES`` of :class:`Exercise`.
"""

from __future__ import annotations

from typing import Any

from . import (
    lesson01,
    lesson02,
    lesson03,
    lesson04,
    lesson05,
    lesson06,
    lesson07,
    lesson08,
    lesson09,
    lesson10,
)
from .checks import (
    TIME_LIMIT,
    Exercise,
    ExerciseError,
    Incorrect,
    Mistake,
    NotAttempted,
    expect,
    run_check,
    unchanged,
)

EXERCISES: dict[str, Exercise] = {
    exercise.id: exercise
    for module in (lesson01, lesson02, lesson03, lesson04, lesson05, lesson06, lesson07,
                   lesson08, lesson09, lesson10)
    for exercise in module.EXERCISES
}


def get(exercise_id: str) -> Exercise:
    """The exercise called ``exercise_id`` (e.g. ``"04.1"``), or a ``KeyError`` naming the ids."""
    try:
        return EXERCISES[exercise_id]
    except KeyError:
        known = ", ".join(sorted(EXERCISES))
        raise KeyError(f"no exercise {exercise_id!r}; the exercises are {known}") from None


def check(exercise_id: str, answer: Any, time_limit: float | None = TIME_LIMIT) -> None:
    """Check a student's ``answer`` to exercise ``exercise_id``; print ✓ or raise the reason.

    The check stops after ``time_limit`` seconds (``None``: no limit). Raises
    :class:`NotAttempted` (the stub is still there, with the hint) or :class:`Incorrect`
    (what is wrong, never the answer). Both render in Jupyter as one line, with no traceback.
    """
    print(run_check(get(exercise_id), answer, time_limit))


def hint(exercise_id: str) -> None:
    """Print the hint for ``exercise_id``."""
    exercise = get(exercise_id)
    print(f"Exercise {exercise.id} ({exercise.title}): {exercise.hint}")


__all__ = ["EXERCISES", "Exercise", "ExerciseError", "Incorrect", "Mistake", "NotAttempted",
           "TIME_LIMIT", "check", "expect", "get", "hint", "run_check",
           "unchanged"]
