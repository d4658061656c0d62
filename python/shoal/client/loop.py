"""Where a session's coroutines run: one event loop per session, shared by every thread.

A session's storage client and backend are bound to one event loop, and a user may call
``compute()`` from many threads at once (a web server's handlers, a thread pool). Two ways:

- :class:`LoopThread` (distributed and threaded sessions): the loop runs for the session's life
  in a daemon thread of its own; a caller's coroutine is handed to it and the caller blocks on
  the result, so any number of threads share the loop safely, and a notebook's own running loop
  is no concern. A caller interrupted while it waits (Ctrl-C) cancels its coroutine on the loop
  and waits for it to clean up before the interrupt goes on.
- :class:`CallerLoop` (``scheduler="sync"``): task functions run inline on the loop, so the loop
  runs in the caller's own thread, where debuggers, Ctrl-C and thread-locals behave as in plain
  Python. Callers from several threads take turns (one lock).
- :class:`BorrowedLoop` (a task's own runs, :mod:`shoal.runtime.context`): the worker's loop,
  which runs in the worker's thread while the task waits in its own.

State: :class:`LoopThread` has ``loop`` (running from construction until :meth:`close`),
``_thread`` (the one thread that runs it) and ``_closing`` (set once by :meth:`close`: no new
call is taken, and a call cancelled by the close says so); :class:`CallerLoop` has ``loop``
(run by whichever thread holds ``_lock``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

from ..errors import ShoalError

T = TypeVar("T")

#: How long an interrupted caller waits for its cancelled coroutine to clean up.
CANCEL_GRACE_S = 10.0


class SessionLoop(Protocol):
    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Runs ``coro`` on the session's loop; returns its result (or raises its error)."""

    def spawn(self, coro: Coroutine[Any, Any, None]) -> concurrent.futures.Future[None] | None:
        """Starts ``coro`` in the background (None: this loop only runs while a caller waits)."""

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T] | None:
        """Starts ``coro`` and returns its future at once, or None (and closes ``coro``) when
        this loop runs only while a caller waits in :meth:`run`."""

    def close(self, last: Coroutine[Any, Any, None] | None = None) -> None:
        """Runs ``last`` (the session's cleanup) after whatever still runs, then stops."""


class LoopThread:
    """The session's loop in a daemon thread of its own (see the module docstring)."""

    def __init__(self, name: str = "shoal-session") -> None:
        self.loop = asyncio.new_event_loop()
        self._closing = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a session's call made from inside its own event loop")
        if self._closing:
            coro.close()
            raise ShoalError("this Session is closed")
        finished = threading.Event()

        async def tracked() -> T:
            try:
                return await coro
            finally:
                finished.set()  # its cleanup (``finally`` blocks) is over

        future = asyncio.run_coroutine_threadsafe(tracked(), self.loop)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            if self._closing:
                raise ShoalError("the Session was closed while this call waited") from None
            raise
        except BaseException:
            if not future.done():  # interrupted while waiting: stop the coroutine as well
                future.cancel()  # marks the future at once; the coroutine unwinds after
                finished.wait(CANCEL_GRACE_S)
            raise

    def spawn(self, coro: Coroutine[Any, Any, None]) -> concurrent.futures.Future[None]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        if self._closing:
            coro.close()
            raise ShoalError("this Session is closed")
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self, last: Coroutine[Any, Any, None] | None = None) -> None:
        """Cancels what still runs on the loop (callers in other threads get a ShoalError
        saying the session was closed), lets it unwind, runs ``last``, and stops the loop."""
        if self.loop.is_closed():
            if last is not None:
                last.close()
            return
        self._closing = True
        with contextlib.suppress(RuntimeError, concurrent.futures.TimeoutError):
            asyncio.run_coroutine_threadsafe(_cancel_all(), self.loop).result(CANCEL_GRACE_S)
        if last is not None:
            asyncio.run_coroutine_threadsafe(last, self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(CANCEL_GRACE_S)
        if not self._thread.is_alive():
            self.loop.close()


class BorrowedLoop:
    """A worker's running loop, used by a task (in another thread) for runs of its own; see
    :mod:`shoal.runtime.context`. While the task waits, its worker is parked (``on_park``)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, on_park: Callable[[bool], None] | None = None
    ) -> None:
        self.loop = loop
        self._on_park = on_park

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        if self._on_park is not None:
            self._on_park(True)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # interrupted (the task timed out, the worker stops): stop it too
            raise
        finally:
            if self._on_park is not None:
                self._on_park(False)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> concurrent.futures.Future[None]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self, last: Coroutine[Any, Any, None] | None = None) -> None:
        if last is not None:  # the loop is the worker's: it goes on
            asyncio.run_coroutine_threadsafe(last, self.loop).result()


class CallerLoop:
    """The session's loop, run by the calling thread (see the module docstring)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._lock = threading.RLock()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        with self._lock:
            return _run_here(self.loop, coro)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        coro.close()
        return None

    def submit(self, coro: Coroutine[Any, Any, T]) -> None:
        coro.close()
        return None

    def close(self, last: Coroutine[Any, Any, None] | None = None) -> None:
        with self._lock:
            try:
                if last is not None:
                    _run_here(self.loop, last)
            finally:
                self.loop.close()


async def _cancel_all() -> None:
    me = asyncio.current_task()
    others = [t for t in asyncio.all_tasks() if t is not me]
    for t in others:
        t.cancel()
    await asyncio.gather(*others, return_exceptions=True)


def _run_here(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """Runs ``coro`` on ``loop`` in this thread, or, when this thread already runs a loop (a
    notebook), in a helper thread while this one waits."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        running = False
    else:
        running = True
    if not running:
        return loop.run_until_complete(coro)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="shoal-run") as pool:
        return pool.submit(loop.run_until_complete, coro).result()
