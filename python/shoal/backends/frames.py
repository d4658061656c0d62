"""What travels to a LocalProcesses worker process: queue frames and the pipe protocol.

Queue frames. An invocation goes onto its pool's Redis list (:func:`shoal.storage.keys.
pool_queue`) as ``enqueue time (f64) | memory_mb (u32, 0 = none) | invocation``, big-endian.
The enqueue time is the client's or worker's wall clock when it pushed: a worker measures its
start latency (queue wait, plus the process start when cold) against it. ``memory_mb`` lets the
pool manager route the frame to a process started with that memory limit without decoding the
invocation. The manager treats an empty frame (``b""``) as "wake up" and drops it.

Delivery copies. A pool may deliver every invocation more than once (fault injection, as a
platform with at-least-once delivery may do). The backend tells its processes how many copies
through one environment variable, so a worker invoking its peers pushes as many.

Pipe protocol (manager <-> process). The manager writes each frame to a process's command pipe
with a u32 big-endian length prefix (:func:`pipe_message`); the process writes to its ack pipe
one byte :data:`ACK_DONE` when the invocation is finished (it is idle again), :data:`ACK_PARKED`
/ :data:`ACK_RUNNING` when a pinned worker waits on its inbox with nothing to run / runs again,
and :data:`ACK_TASK` + u32 length + ``"<run id> <task id>"`` as each task starts (so a manager
that sees the process die knows which task crashed it). :class:`AckReader` parses that stream.
The manager closing the command pipe tells the process to exit.
"""

from __future__ import annotations

import os
import struct
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Resources

_FRAME_HEADER = struct.Struct(">dI")
_PIPE_LENGTH = struct.Struct(">I")
_COPIES_VAR = "SHOAL_POOL_DELIVERY_COPIES"
#: The server a worker process talks to (its URL may carry a password, so it goes in the
#: environment, readable by the process's user only, not on the command line).
SERVER_URL_VAR = "SHOAL_WORKER_REDIS_URL"

ACK_DONE = b"\x01"
ACK_PARKED = b"P"
ACK_RUNNING = b"R"
ACK_TASK = b"T"


def task_message(run_id: str, task: int) -> bytes:
    """The ack a process sends as a task starts."""
    body = f"{run_id} {task}".encode()
    return ACK_TASK + _PIPE_LENGTH.pack(len(body)) + body


class AckReader:
    """Parses a process's ack stream, in whatever pieces the pipe delivers it."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[bytes | tuple[str, int]]:
        """The complete messages in ``data`` (and what came before): one-byte acks, or
        ``(run id, task)`` for a task start."""
        self._buf += data
        out: list[bytes | tuple[str, int]] = []
        while self._buf:
            if self._buf[:1] != ACK_TASK:
                out.append(self._buf[:1])
                self._buf = self._buf[1:]
                continue
            head = 1 + _PIPE_LENGTH.size
            if len(self._buf) < head:
                break
            (size,) = _PIPE_LENGTH.unpack_from(self._buf, 1)
            if len(self._buf) < head + size:
                break
            run_id, task = self._buf[head : head + size].decode().split(" ")
            out.append((run_id, int(task)))
            self._buf = self._buf[head + size :]
        return out


def encode_frame(invocation: bytes, resources: Resources | None) -> bytes:
    mb = (resources.memory_mb if resources else None) or 0
    return _FRAME_HEADER.pack(time.time(), mb) + invocation


def decode_frame(frame: bytes) -> tuple[float, int | None, bytes]:
    """``(enqueue time, memory_mb or None, invocation)``."""
    enqueued, mb = _FRAME_HEADER.unpack_from(frame)
    return enqueued, (mb or None), frame[_FRAME_HEADER.size :]


def delivery_copies_env(copies: int) -> dict[str, str]:
    """The environment entry that tells a pool's processes how many copies to deliver."""
    return {_COPIES_VAR: str(copies)}


def delivery_copies() -> int:
    """In a worker process: how many times its pool delivers each invocation."""
    raw = os.environ.get(_COPIES_VAR, "1")
    try:
        copies = int(raw)
    except ValueError:
        raise ValueError(f"{_COPIES_VAR}={raw!r} is not an integer") from None
    if not 1 <= copies <= 16:
        raise ValueError(f"{_COPIES_VAR}={raw!r} must be between 1 and 16")
    return copies


def pipe_message(frame: bytes) -> bytes:
    """A frame as written to a process's command pipe (length-prefixed)."""
    return _PIPE_LENGTH.pack(len(frame)) + frame
