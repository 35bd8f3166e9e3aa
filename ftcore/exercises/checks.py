"""Exercise checks: say whether a student's code works and, if not, why, without the answer.

An exercise asks the student to write a function in a marked cell. Its check calls that function
on fresh inputs of its own (so a hard-coded answer does not pass) and tests what the result must
satisfy. The verdict is one line: ``✓ Exercise 03.1 (...): passed.`` or an :class:`ExerciseError`
whose message says what is wrong. In Jupyter the error shows as that message alone, with no
traceback into ``ftcore``: the student's next step is in the message, not in our code.
"""

from __future__ import annotations

import sysconfig
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_FTCORE = Path(__file__).resolve().parents[1]
_STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()


class ExerciseError(AssertionError):
    """A check's verdict that the answer is not there yet; ``str(error)`` is the whole story."""

    verdict = "not yet right"

    def __init__(self, exercise_id: str, message: str):
        self.exercise_id = exercise_id
        self.message = message
        super().__init__(f"Exercise {exercise_id} is {self.verdict}: {message}")

    def _render_traceback_(self) -> list[str]:
        # IPython shows these lines instead of a traceback (the documented hook for this).
        return [f"\x1b[31m✗ {self}\x1b[0m"]


class NotAttempted(ExerciseError):
    """The student's function still raises the stub's ``NotImplementedError``."""

    verdict = "not done yet"


class Incorrect(ExerciseError):
    """The student's function runs but its result breaks a requirement."""


class Mistake(Exception):
    """Raised inside a check (via :func:`expect`) with the message for the student."""


def expect(condition: Any, message: str) -> None:
    """Fail the current check with ``message`` unless ``condition`` holds.

    Write ``message`` for the student: what is wrong and what to look at, never the answer.
    """
    if not condition:
        raise Mistake(message)


@dataclass(frozen=True)
class Exercise:
    """One exercise: its id (``"LL.N"``, lesson and number), title, hint, and check.

    ``test(answer)`` calls the student's answer (usually a function) and raises
    :class:`Mistake` through :func:`expect` when a requirement is not met.
    """

    id: str
    title: str
    hint: str
    test: Callable[[Any], None]

    @property
    def lesson(self) -> int:
        return int(self.id.split(".")[0])


def run_check(exercise: Exercise, answer: Any) -> str:
    """Check ``answer`` for ``exercise``; return the success line or raise :class:`ExerciseError`.

    A ``NotImplementedError`` (the student edition's stub) becomes :class:`NotAttempted` with the
    hint; a :class:`Mistake` becomes :class:`Incorrect` with its message; any other exception
    raised by the student's code is reported by type and message, as the student would see it.
    """
    if answer is None or answer is Ellipsis:
        raise NotAttempted(exercise.id, f"there is no answer to check yet. Hint: {exercise.hint}")
    try:
        exercise.test(answer)
    except NotImplementedError:
        raise NotAttempted(exercise.id, f"your function still raises NotImplementedError. "
                                        f"Hint: {exercise.hint}") from None
    except Mistake as mistake:
        raise Incorrect(exercise.id, str(mistake)) from None
    except ExerciseError:
        raise
    except Exception as error:  # the student's code crashed: say how, as they would see it
        raise Incorrect(exercise.id, f"your code raised {type(error).__name__}: {error}"
                                     f"{_where(error)}") from None
    return f"✓ Exercise {exercise.id} ({exercise.title}): passed."


def _where(error: BaseException) -> str:
    """`` (in `f`, line 3: `code`)`` for the student's last frame, or ``""``.

    The student's frames are those outside ftcore, installed packages (torch...) and Python's
    standard library: an error raised deep inside ``torch.norm`` is located at the student's call.
    """
    frames = [frame for frame in traceback.extract_tb(error.__traceback__)
              if not _is_library(frame.filename)]
    if not frames:
        return ""
    frame = frames[-1]
    code = f": `{frame.line.strip()}`" if frame.line else ""
    return f" (in `{frame.name}`, line {frame.lineno}{code})"


def _is_library(filename: str) -> bool:
    path = Path(filename).resolve()
    return (path.is_relative_to(_FTCORE) or path.is_relative_to(_STDLIB)
            or not {"site-packages", "dist-packages"}.isdisjoint(path.parts))
