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
with a u32 big-endian length prefix (:func:`pipe_message`); the process writes one byte to its
ack pipe: :data:`ACK_DONE` when the invocation is finished (it is idle again), :data:`ACK_PARKED`
/ :data:`ACK_RUNNING` when a pinned worker waits on its inbox with nothing to run / runs again.
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


def delivery_copies_env(copies: int) -> dict[str, str]:
    """The environment entry that tells a pool's processes how many copies to deliver."""
    return {_COPIES_VAR: str(copies)}


def delivery_copies() -> int:
    """In a worker process: how many times its pool delivers each invocation."""
    return max(1, int(os.environ.get(_COPIES_VAR, "1")))


def pipe_message(frame: bytes) -> bytes:
    """A frame as written to a process's command pipe (length-prefixed)."""
    return _PIPE_LENGTH.pack(len(frame)) + frame
