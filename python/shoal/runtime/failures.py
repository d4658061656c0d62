"""How a task's failure reads: the exception, the message and the traceback a worker reports.

Every failure a worker reports for a task is a :class:`~.machine.TaskFailure` made here, so the
task keeps its name and the user's traceback on every path: an exception raised by the task
(:func:`raised`, with the frames of shoal and asyncio dropped and text that is not valid UTF-8
escaped, or the event carrying it could not be written), and the failures the worker itself
decides (:func:`refused`: a timeout, an output too large or not encodable, a task that crashed
its workers too often). Nothing here does I/O.

A raised exception travels twice: as text (type, message, traceback), which every reader of the
run's events can show, and as itself, encoded and sealed for its run and task, with its frames
(file, function, line, module and columns of each, JSON), so the client can raise an exception
of the task's own type whose traceback reaches the user's line. Either is left out when it
cannot travel (an exception that does not pickle, or is over :data:`MAX_EXCEPTION_BYTES`); the
text always does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import sys
import traceback
from collections import Counter
from types import CodeType, TracebackType

from ..serialize import dumps_value
from .machine import TaskFailure

#: The largest encoded exception a failure carries (its text always goes).
MAX_EXCEPTION_BYTES = 64 * 1024
#: The most frames a failure carries for debuggers: the innermost, where the error is.
MAX_FRAMES = 64

_INTERNAL = (
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),  # the shoal package
    os.path.dirname(asyncio.__file__),
    os.path.dirname(concurrent.futures.__file__),
)


class NotEncodable(Exception):
    """A task's value could not be encoded (its cause says why)."""


def raised(
    e: BaseException, now: float, memory_mb: int | None = None, where: str | None = None
) -> TaskFailure:
    """What a task's exception reports; with ``where`` (:func:`~shoal.serialize.error_place`)
    the exception itself and its frames go too. An allocation that failed under the process's
    memory limit (``memory_mb``) says which limit it was."""
    message = _printable(str(e))
    memory = isinstance(e, MemoryError) or "can't start new thread" in str(e)
    if memory_mb and memory:
        message += (
            f" (the worker process runs under memory_mb={memory_mb}, a limit on its address "
            "space, which threads and libraries reserve generously: give the task more)"
        )
    trace = _printable(user_traceback(e))
    if where is None:
        return TaskFailure(type(e).__name__, message, trace, now)
    encoded = b"" if memory else _encoded(e, where)
    return TaskFailure(type(e).__name__, message, trace, now, encoded, _frames(e.__traceback__))


def _encoded(e: BaseException, where: str) -> bytes:
    try:
        blob = dumps_value(e, where)
    except Exception:  # an exception holding what cannot be pickled: its text still goes
        return b""
    return blob if len(blob) <= MAX_EXCEPTION_BYTES else b""


def _frames(tb: TracebackType | None) -> str:
    tb = _user_frames(tb)
    depth = 0
    walk = tb
    while walk is not None:
        depth += 1
        walk = walk.tb_next
    for _ in range(depth - MAX_FRAMES):  # a deep recursion: keep the innermost
        assert tb is not None
        tb = tb.tb_next
    frames = []
    while tb is not None:
        code = tb.tb_frame.f_code
        module = tb.tb_frame.f_globals.get("__name__")
        where = _position(code, tb.tb_lasti)
        frames.append([code.co_filename, code.co_name, tb.tb_lineno, str(module), *where])
        tb = tb.tb_next
    return json.dumps(frames) if frames else ""


def _position(code: CodeType, lasti: int) -> list[int | None]:
    """End line, column and end column of the instruction a frame stopped at (for carets)."""
    positions = list(code.co_positions())
    if 0 <= lasti // 2 < len(positions):
        _, end_line, col, end_col = positions[lasti // 2]
        return [end_line, col, end_col]
    return [None, None, None]


def refused(
    exc_type: str, message: str, now: float, cause: TaskFailure | None = None
) -> TaskFailure:
    """A failure the worker decides, keeping the traceback of ``cause`` if there is one."""
    return TaskFailure(exc_type, message, cause.traceback if cause else "", now)


def missing_module(name: str, e: ModuleNotFoundError, now: float) -> TaskFailure:
    """The failure of a task whose function or inputs need a module its worker cannot import."""
    module = e.name or str(e)
    message = (
        f"task '{name}' needs the module '{module}', which its worker ({sys.executable}) cannot "
        f"import. An installed package must be installed where the workers run too; a module "
        "of your own project travels with the task when the client has imported it (import it "
        "at the top of your script, not inside the task)"
    )
    return TaskFailure("ModuleNotFoundError", message, "", now)


def crashed_too_often(
    name: str, crashes: tuple[str, ...], allowed: int, now: float
) -> TaskFailure | None:
    """The failure of a task whose workers died running it ``allowed`` times or more."""
    if len(crashes) < allowed:
        return None
    hows = "; ".join(f"{how} x{n}" if n > 1 else how for how, n in Counter(crashes).items())
    message = (
        f"task '{name}' crashed its worker {len(crashes)} times ({hows}), as often as it may "
        f"(crash_attempts={allowed}); it ends its process (os._exit, a signal, a crash in "
        "native code) or needs more memory"
    )
    return refused("WorkerCrashed", message, now)


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def user_traceback(e: BaseException) -> str:
    """The traceback from the user's function down: shoal's and asyncio's frames dropped."""
    tb = _user_frames(e.__traceback__)
    return "".join(traceback.format_exception(type(e), e, tb or e.__traceback__))


def _user_frames(tb: TracebackType | None) -> TracebackType | None:
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_INTERNAL):
        tb = tb.tb_next
    return tb
