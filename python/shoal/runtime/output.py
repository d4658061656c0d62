"""What a worker process prints: each line prefixed with the task that printed it.

A LocalProcesses worker's stdout and stderr are pipes to its pool, which writes every line to
the client's own ``sys.stdout`` / ``sys.stderr`` (so a progress bar on screen prints it above
itself instead of being torn apart). Here, in the worker, :class:`Prefixed` starts each line
with ``(task-name pid=1234) ``, the task running when the line began, or ``(shoal pid=1234)``
between tasks (shoal's own log lines). Output a task's native code writes to the file
descriptors directly reaches the client unprefixed.

State: :data:`running` (the name of the task running in this process, or None), written by the
worker's shell as each task starts and ends.
"""

from __future__ import annotations

import io
import os
import sys
import threading
from typing import TextIO

#: The name of the task running in this process, or None between tasks.
running: str | None = None


class Prefixed(io.TextIOBase):
    """A text stream that starts each line written to it with the running task's prefix."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._at_line_start = True
        self._lock = threading.Lock()  # a task's threads and the worker's may write at once
        self._pid = os.getpid()

    def _prefix(self) -> str:
        return f"({running or 'shoal'} pid={self._pid}) "

    def write(self, text: str) -> int:
        if not text:
            return 0
        with self._lock:
            parts = text.split("\n")
            out = []
            for i, part in enumerate(parts):
                last = i == len(parts) - 1
                if part and self._at_line_start:
                    out.append(self._prefix())
                out.append(part if last else part + "\n")
                self._at_line_start = not last or (not part and self._at_line_start)
            self._out.write("".join(out))
            if "\n" in text:
                self._out.flush()  # a line at a time: the pool forwards what it reads
        return len(text)

    def flush(self) -> None:
        self._out.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._out.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._out.encoding

    @property
    def buffer(self) -> object:
        """The binary stream under it: bytes written there go unprefixed."""
        return self._out.buffer

    def __getattr__(self, name: str) -> object:  # errors, reconfigure, ...: the real stream's
        return getattr(self._out, name)


def prefix_output() -> None:
    """Makes this process's ``print()`` output, and its logging, carry the task prefix."""
    sys.stdout = Prefixed(sys.stdout)
    sys.stderr = Prefixed(sys.stderr)
