"""Exercise checks: say whether a student's code works and, if not, why, without the answer.

An exercise asks the student to write a function in a marked cell. Its check calls that function
on fresh inputs of its own (so a hard-coded answer does not pass) and tests what the result must
satisfy. The verdict is one line: ``✓ Exercise 04.1 (...): passed.`` or an :class:`ExerciseError`
whose message says what is wrong. In Jupyter the error shows as that message alone, with no
traceback into ``ftcore``: the student's next step is in the message, not in our code.
"""

from __future__ import annotations

import copy
import functools
import signal
import sysconfig
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_FTCORE = Path(__file__).resolve().parents[1]
_STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()
#: The longest a check may run (seconds) before the student's code is stopped: a loop that never
#: ends must not hang the kernel.
TIME_LIMIT = 60.0


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


class _TimeUp(BaseException):
    """Raised in the student's code when the check's time is up (a BaseException, so that an
    ``except Exception`` in the student's code cannot swallow it)."""


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`_TimeUp` in the running code after ``seconds`` (a real-time alarm).

    Works in the main thread on Unix, where Jupyter kernels run cells; elsewhere (Windows, a
    thread) there is no limit. ``None`` or ``0`` means no limit.
    """
    usable = (seconds and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def alarm(signum, frame):
        raise _TimeUp

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _Calls:
    """The student's function, wrapped to remember the values it returned and the exceptions
    its own code raised (so an error the check raises on a returned value is told apart)."""

    def __init__(self, function: Callable):
        self.function = function
        self.raised: list[BaseException] = []
        self.returned: list[Any] = []

    def __call__(self, *args, **kwargs):
        try:
            result = self.function(*args, **kwargs)
        except Exception as error:
            self.raised.append(error)
            raise
        self.returned.append(result)
        return result


def unchanged(function: Callable, *args, what: str = "its inputs", **kwargs):
    """``function`` called on deep copies of the arguments; fails the check if it changed them.

    For tasks whose inputs must stay as they are: the copies are compared with the originals
    after the call, tensor by tensor (``torch.equal``) or by ``==``. The check's own data are
    never touched, whatever the function does.
    """
    given = copy.deepcopy((args, kwargs))
    result = function(*given[0], **given[1])
    expect(_same(given, (args, kwargs)), f"your function changed {what} in place; leave them "
                                         f"as they are and build new tensors or objects instead")
    return result


def _same(a: Any, b: Any) -> bool:
    import torch

    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
                and a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    try:
        return bool(a == b)
    except Exception:  # objects without a usable ==: compare what we can, their identity
        return a is b


def describe(value: Any) -> str:
    """``value`` in a few words, for a verdict: ``a tensor of shape (3, 5), dtype float32``."""
    import torch

    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}, dtype {str(value.dtype).split('.')[-1]}"
    if isinstance(value, (tuple, list, dict, set)):
        return f"a {type(value).__name__} of {len(value)} item{'s' * (len(value) != 1)}"
    return f"a {type(value).__name__} ({value!r:.40})"


def run_check(exercise: Exercise, answer: Any, time_limit_s: float | None = TIME_LIMIT) -> str:
    """Check ``answer`` for ``exercise``; return the success line or raise :class:`ExerciseError`.

    A ``NotImplementedError`` (the student edition's stub) becomes :class:`NotAttempted` with the
    hint; a :class:`Mistake` becomes :class:`Incorrect` with its message; an exception raised by
    the student's code is reported by type and message, as the student would see it; one the
    check raised on what the function returned (``None``, a wrong type or shape) is reported as
    that ("returned None: did you forget `return`?"). The student's function gets copies of its
    inputs, and the whole check stops after ``time_limit_s`` seconds.
    """
    if answer is None or answer is Ellipsis:
        raise NotAttempted(exercise.id, f"there is no answer to check yet. Hint: {exercise.hint}")
    calls = _Calls(answer) if callable(answer) and not isinstance(answer, type) else None
    if calls is not None:
        functools.update_wrapper(calls, answer)  # type: ignore[arg-type]
    try:
        with time_limit(time_limit_s):
            exercise.test(answer if calls is None else calls)
    except NotImplementedError:
        raise NotAttempted(exercise.id, f"your function still raises NotImplementedError. "
                                        f"Hint: {exercise.hint}") from None
    except Mistake as mistake:
        raise Incorrect(exercise.id, str(mistake)) from None
    except ExerciseError:
        raise
    except _TimeUp:
        raise Incorrect(exercise.id, f"the check ran over {time_limit_s:g} s and was stopped: "
                                     f"is there a loop that never ends?") from None
    except Exception as error:
        if calls is not None and calls.returned and not any(e is error for e in calls.raised):
            raise Incorrect(exercise.id, _unusable(calls.returned[-1], error)) from None
        # the student's code crashed: say how, as they would see it
        raise Incorrect(exercise.id, f"your code raised {type(error).__name__}: {error}"
                                     f"{_where(error)}") from None
    return f"✓ Exercise {exercise.id} ({exercise.title}): passed."


def _unusable(value: Any, error: Exception) -> str:
    """The verdict on a returned value the check could not use (it raised ``error`` on it)."""
    if value is None:
        return "your function returned None: did you forget `return`?"
    return (f"your function returned {describe(value)}, which is not what the exercise asks for "
            f"(the check failed on it with {type(error).__name__}: {error}); check the type and "
            f"shape the exercise asks you to return")


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
