"""Processes that never outlive the client: the embedded server and worker processes.

A client killed outright (SIGKILL, an OOM kill) runs no cleanup, so its children must notice by
themselves. On Linux each asks the kernel for a *parent-death signal* (``PR_SET_PDEATHSIG``,
SIGKILL): when the thread that started it ends, it is killed. Worker processes ask at start
(:func:`die_with_parent`). The server is a program of its own, so it is started through this
module (``python -m shoal.lifetime PROGRAM ARGS``), which asks and then becomes the program
(``exec`` keeps the request), and from a long-lived thread (:func:`spawn`), since the signal
follows the *thread* that started the child: a short-lived thread of the user's would take the
server with it. Elsewhere (macOS) this is a no-op and a client that is killed outright leaves
its children to end on their own (the pool's processes read the end of their command pipe).

A SIGTERM to the client is turned into ``SystemExit`` (:func:`exit_on_sigterm`), so it runs the
same cleanup as Ctrl-C: runs cancelled, keys deleted, server stopped.
"""

from __future__ import annotations

import ctypes
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

_PR_SET_PDEATHSIG = 1

_requests: queue.Queue[tuple[Callable[[], Any], queue.Queue[Any]]] = queue.Queue()
_spawner: threading.Thread | None = None
_spawner_lock = threading.Lock()


def die_with_parent() -> None:
    """Asks to be killed when the parent (thread) that started this process ends (Linux)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the parent died before the request: go now
        os._exit(1)


def spawn(args: Sequence[str], **popen: Any) -> subprocess.Popen[bytes]:
    """Starts ``args`` so that it dies with this process, from a thread that lives as long."""
    command = [sys.executable, "-m", "shoal.lifetime", *args]
    reply: queue.Queue[Any] = queue.Queue()
    _requests.put((lambda: subprocess.Popen(command, **popen), reply))
    _ensure_spawner()
    got = reply.get()
    if isinstance(got, BaseException):
        raise got
    assert isinstance(got, subprocess.Popen)
    return got


def _ensure_spawner() -> None:
    global _spawner
    with _spawner_lock:
        if _spawner is None or not _spawner.is_alive():
            _spawner = threading.Thread(target=_serve, name="shoal-spawner", daemon=True)
            _spawner.start()


def _serve() -> None:
    while True:
        start, reply = _requests.get()
        try:
            reply.put(start())
        except BaseException as e:  # handed to the caller, who raises it
            reply.put(e)


def exit_on_sigterm() -> None:
    """In the main thread, unless the program handles SIGTERM itself: SIGTERM exits like
    Ctrl-C does (``SystemExit(143)``), through every ``finally`` and ``atexit``."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return
    signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":  # python -m shoal.lifetime PROGRAM ARGS: become PROGRAM, mortal
    die_with_parent()
    os.execvp(sys.argv[1], sys.argv[1:])
