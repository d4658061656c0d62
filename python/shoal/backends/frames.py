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
with a u32 big-endian length prefix and the wall-clock time it handed the frame over (f64;
:func:`pipe_message`): the process tells its queue wait (enqueued -> handed over) from its
start (handed over -> ready), which a simulation of the platform needs apart. The process
writes to its ack pipe one byte :data:`ACK_DONE` when the invocation is finished (it is idle
again), :data:`ACK_PARKED` / :data:`ACK_RUNNING` when a pinned worker waits on its inbox with
nothing to run / runs again. Which task a process runs is not acked: it writes it into its
*task slot* (a small unlinked file the manager passes it, :func:`task_slot`), which the manager
reads when the process dies, so the death is reported as a crash of that task. The manager
closing the command pipe tells the process to exit.
"""

from __future__ import annotations

import os
import struct
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Resources

_FRAME_HEADER = struct.Struct(">dI")
#: The length prefix and the hand-over time of a pipe message.
PIPE_HEADER = struct.Struct(">Id")
_COPIES_VAR = "SHOAL_POOL_DELIVERY_COPIES"
#: The server a worker process talks to (its URL may carry a password, so it goes in the
#: environment, readable by the process's user only, not on the command line).
SERVER_URL_VAR = "SHOAL_WORKER_REDIS_URL"

ACK_DONE = b"\x01"
ACK_PARKED = b"P"
ACK_RUNNING = b"R"


def encode_frame(invocation: bytes, resources: Resources | None) -> bytes:
    mb = (resources.memory_mb if resources else None) or 0
    return _FRAME_HEADER.pack(time.time(), mb) + invocation


def decode_frame(frame: bytes) -> tuple[float, int | None, bytes]:
    """``(enqueue time, memory_mb or None, invocation)``."""
    enqueued, mb = _FRAME_HEADER.unpack_from(frame)
    return enqueued, (mb or None), frame[_FRAME_HEADER.size :]


#: Bytes of a process's task slot: ``"<run id> <task id>"``, space-padded; all spaces between
#: tasks. Written by the process with one ``pwrite`` as each task starts, read by the manager
#: only when it needs to know (a death, a run that gave up): no wake-up per task.
TASK_SLOT_SIZE = 128


def task_slot(run_id: str, task: int | None) -> bytes:
    """What a process writes into its slot as ``task`` starts (None: it is between tasks)."""
    body = b"" if task is None else f"{run_id} {task}".encode()
    if len(body) > TASK_SLOT_SIZE:
        raise ValueError(f"run id {run_id!r} is too long for a task slot")
    return body.ljust(TASK_SLOT_SIZE)


def read_task_slot(data: bytes) -> tuple[str, int] | None:
    """(run id, task) a slot holds, or None."""
    parts = data.decode(errors="replace").split()
    if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
        return None
    return parts[0], int(parts[1])


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
    return PIPE_HEADER.pack(len(frame), time.time()) + frame
