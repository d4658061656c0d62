"""How a task's failure reads: the exception, the message and the traceback a worker reports.

Every failure a worker reports for a task is a :class:`~.machine.TaskFailure` made here, so the
task keeps its name and the user's traceback on every path: an exception raised by the task
(:func:`raised`, with the frames of shoal and asyncio dropped and text that is not valid UTF-8
escaped, or the event carrying it could not be written), and the failures the worker itself
decides (:func:`refused`: a timeout, an output too large or not encodable, a task that crashed
its workers too often). Nothing here does I/O.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import traceback
from collections import Counter

from .machine import TaskFailure

_INTERNAL = (
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),  # the shoal package
    os.path.dirname(asyncio.__file__),
    os.path.dirname(concurrent.futures.__file__),
)


class NotEncodable(Exception):
    """A task's value could not be encoded (its cause says why)."""


def raised(e: BaseException, now: float, memory_mb: int | None = None) -> TaskFailure:
    """What a task's exception reports. An allocation that failed under the process's memory
    limit (``memory_mb``) says which limit it was."""
    message = _printable(str(e))
    if memory_mb and (isinstance(e, MemoryError) or "can't start new thread" in str(e)):
        message += (
            f" (the worker process runs under memory_mb={memory_mb}, a limit on its address "
            "space, which threads and libraries reserve generously: give the task more)"
        )
    return TaskFailure(type(e).__name__, message, _printable(user_traceback(e)), now)


def refused(
    exc_type: str, message: str, now: float, cause: TaskFailure | None = None
) -> TaskFailure:
    """A failure the worker decides, keeping the traceback of ``cause`` if there is one."""
    return TaskFailure(exc_type, message, cause.traceback if cause else "", now)


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
    tb = e.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_INTERNAL):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(e), e, tb or e.__traceback__))
