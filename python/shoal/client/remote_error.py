"""The error a client raises for a failed run, rebuilt from the run's TASK_FAILED event.

The event carries the failure as text (type, message, traceback) and, when they could travel,
the task's exception itself (encoded and sealed for the run and task: one that fails its seal
is never unpickled) and its frames (file, function, line, module). From these the client makes a
:class:`~shoal.errors.TaskError` that is also an instance of the task's exception type
(:meth:`TaskError.of`), with a traceback that ends in the task's own frames, so ``except
KeyError`` catches it and ``pdb.pm()`` stops at the user's line. Without the exception, a
built-in type named by the event (``KeyError``, a ``TaskTimeout`` as ``TimeoutError``) is
rebuilt from its message; anything else is a plain ``TaskError``.
"""

from __future__ import annotations

import base64
import builtins
import json
import logging
import sys
from types import CodeType, TracebackType

from .. import events
from ..errors import PayloadError, ShoalError, StorageError, TaskError
from ..serialize import error_place, loads_value

log = logging.getLogger("shoal")

#: Failures the worker decides, and the built-in type each is an instance of.
_DECIDED = {"TaskTimeout": TimeoutError, "OutputTooLarge": ValueError}


def task_error(ev: events.TaskFailed | None, run_id: str) -> ShoalError:
    """The error to raise for a run that failed with ``ev``."""
    if ev is None:  # RUN_FAILED without its TASK_FAILED: not written by this version
        return TaskError("?", "Exception", "the run failed without an error record")
    if ev.name == "<worker>" and ev.exc_type == "StorageError":
        return StorageError(f"{ev.message} (reported by worker {ev.worker or '?'})")
    if ev.name == "<worker>" and ev.exc_type == "PayloadError":
        return PayloadError(
            f"a worker refused a payload of this run: {ev.message} (worker {ev.worker or '?'})"
        )
    cause = _cause(ev, run_id)
    err = TaskError.of(
        ev.name,
        ev.exc_type,
        ev.message,
        ev.traceback,
        attempts=ev.attempt,
        worker=ev.worker or None,
        cause=cause,
        like=None if cause is not None else _builtin(ev.exc_type),
    )
    frames = _frames(ev.frames)
    return err.with_traceback(frames) if frames is not None else err


def _cause(ev: events.TaskFailed, run_id: str) -> BaseException | None:
    if not ev.exception:
        return None
    try:
        cause = loads_value(base64.b64decode(ev.exception), error_place(run_id, ev.task))
    except PayloadError as e:  # badly sealed: never unpickled; the text still tells
        log.warning("the exception of task '%s' was refused: %s", ev.name, e)
        return None
    except Exception as e:  # its class cannot be imported here, or does not unpickle
        log.debug("the exception of task '%s' cannot be rebuilt: %r", ev.name, e)
        return None
    return cause if isinstance(cause, BaseException) else None


def _builtin(name: str) -> type[BaseException] | None:
    kind = _DECIDED.get(name) or getattr(builtins, name, None)
    return kind if isinstance(kind, type) and issubclass(kind, Exception) else None


def _frames(encoded: str) -> TracebackType | None:
    """A real traceback whose frames stand for the remote ones: each made by running a one-line
    stub under the remote frame's file, function and line (what tblib does; it is not used
    because its stubs keep their own columns, and printers then draw carets under the wrong
    characters). Here the stub takes the remote instruction's columns too."""
    if not encoded:
        return None
    try:
        frames = [_Frame(*f) for f in json.loads(encoded)]
    except (ValueError, TypeError) as e:  # odd frames: the text traceback still tells
        log.debug("the remote frames cannot be rebuilt: %r", e)
        return None
    first: TracebackType | None = None
    last: TracebackType | None = None
    for frame in frames:
        made = frame.traceback()
        if last is None:
            first = made
        else:
            last.tb_next = made
        last = made
    return first


class _Frame:
    def __init__(
        self,
        filename: str,
        name: str,
        line: int,
        module: str,
        end_line: int | None = None,
        col: int | None = None,
        end_col: int | None = None,
    ) -> None:
        self.filename, self.name, self.module = str(filename), str(name), str(module)
        self.line = max(1, int(line))
        self.end = (end_line, col, end_col)

    def traceback(self) -> TracebackType:
        code = _STUB.replace(
            co_filename=self.filename,
            co_name=self.name,
            co_qualname=self.name,
            co_firstlineno=self.line,
        )
        code = _placed(code, self.line, *self.end)
        try:
            exec(code, {"__name__": self.module, "__file__": self.filename, "__stub": _Stub()})
        except _Stub:
            tb = sys.exc_info()[2]
            assert tb is not None and tb.tb_next is not None
            return tb.tb_next  # the stub's frame (``tb`` is this one's)
        raise AssertionError("the stub did not raise")


class _Stub(Exception):
    """Raised by the stub that stands for a remote frame."""


_STUB = compile("raise __stub", "<remote>", "exec")


def _placed(
    code: CodeType, line: int, end_line: int | None, col: int | None, end_col: int | None
) -> CodeType:
    """``code`` with every instruction at the remote position, written in the location table
    format of CPython 3.11 to 3.13 (one long-form entry per 8 code units,
    ``Objects/locations.md``). Checked by reading it back; any doubt keeps ``code``."""
    if None in (end_line, col, end_col):
        return code
    assert end_line is not None and col is not None and end_col is not None
    if end_line < line or col < 0 or end_col < 0:
        return code
    table = bytearray()
    units = len(code.co_code) // 2
    delta = 0  # the first entry's line is co_firstlineno's
    while units > 0:
        n = min(units, 8)
        table.append(0x80 | (14 << 3) | (n - 1))
        table += _varint(delta << 1) + _varint(end_line - line) + _varint(col + 1)
        table += _varint(end_col + 1)
        units -= n
    try:
        placed = code.replace(co_linetable=bytes(table))
        ok = all(p == (line, end_line, col, end_col) for p in placed.co_positions())
    except Exception:
        return code
    return placed if ok else code


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 64:
        out.append(0x40 | (value & 0x3F))
        value >>= 6
    out.append(value)
    return bytes(out)
