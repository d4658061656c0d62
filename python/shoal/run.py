"""A submitted run, as :meth:`Session.submit <shoal.Session.submit>` returns it.

A run has one waiter at a time: whoever first asks for its outcome (``result``,
``as_completed``, ``result_async``, ``cancel``) blocks on its event stream, feeds the progress
line, ticks the watchdog and, at the end, collects the values and deletes the run's keys; later
callers get the same outcome. Until someone waits, the session watches the run in the
background (crash recovery, cleanup of a run nobody waits for).

``as_completed`` yields each requested value as its task finishes: the waiter, in a helper
thread, passes the run's TASK_COMPLETED events to the iterating thread, which fetches the
finished output while the rest still runs. What it missed (a map's list, an output whose keys
were deleted at the run's end) comes from the final values. In ``sync`` mode tasks run only
while the caller waits, so everything comes at the end.

State: ``_outcome`` (None until the run ended: the values, or the error to raise), guarded by
``_waiting`` (held by the one waiter).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from .client.loop import CallerLoop
from .client.submit import Submitted
from .client.wait import ProgressHook, wait
from .errors import RunCancelled, TaskError, UsageError
from .events import TERMINAL, Event, Fields, TaskCompleted, decode
from .progress import RunProgress
from .runtime.elements import MapView, view
from .serialize import loads_value, value_place
from .task import Node

if TYPE_CHECKING:
    from .session import Session


class Run:
    """A submitted run: ``id``, ``result(timeout=)``, ``as_completed()``, ``cancel()``,
    ``events()``, and their async forms ``result_async()`` and ``events_async()``."""

    def __init__(self, session: Session, submitted: Submitted, nodes: tuple[Node[Any], ...]):
        self.session = session
        self.nodes = nodes
        self._sub = submitted
        self._outcome: tuple[Any, ...] | BaseException | None = None
        self._waiting = threading.Lock()  # one waiter; others get its outcome

    @property
    def id(self) -> str:
        return self._sub.run_id

    def result(self, timeout: float | None = None) -> tuple[Any, ...]:
        """Waits for the run; returns the requested values as a tuple (raises ``TaskError`` if
        a task failed, ``RunTimeout`` after ``timeout`` seconds). Keys are cleaned up once."""
        return self._result(timeout, None)

    def _result(self, timeout: float | None, also: ProgressHook | None) -> tuple[Any, ...]:
        check_timeout(timeout)
        with self._waiting:
            if self._outcome is None:
                self._wait(timeout, also)
        assert self._outcome is not None
        if isinstance(self._outcome, BaseException):
            raise self._outcome
        return self._outcome

    async def result_async(self, timeout: float | None = None) -> tuple[Any, ...]:
        """``result()`` for asyncio code: awaits the run without blocking the caller's loop
        (the wait runs in a thread; cancelling the awaiting task stops waiting, not the run:
        ``cancel()`` does that)."""
        return await asyncio.to_thread(self.result, timeout)

    def as_completed(self, timeout: float | None = None) -> Iterator[tuple[Node[Any], Any]]:
        """Yields ``(node, value)`` for each requested node as its task finishes (a map's
        list when the run ends); raises the run's error, if it fails, once the values that
        finished before it were yielded. ``timeout`` bounds the whole run."""
        check_timeout(timeout)
        outputs = self._plain_outputs()
        if self._outcome is not None or isinstance(self.session._loop, CallerLoop):
            yield from zip(self.nodes, self._result(timeout, None), strict=True)
            return
        finished: queue.SimpleQueue[int | None] = queue.SimpleQueue()

        def heard(fields: Fields) -> None:
            if fields.get("type") == TaskCompleted.type and int(fields["task"]) in outputs:
                finished.put(int(fields["task"]))

        def waiter() -> None:
            try:
                self._result(timeout, heard)
            except BaseException:  # kept as the outcome: the iterating thread raises it
                pass
            finally:
                finished.put(None)

        threading.Thread(target=waiter, name=f"shoal-wait-{self.id}", daemon=True).start()
        given: set[int] = set()
        while (task := finished.get()) is not None:
            if task in given:
                continue  # a task that ran twice (a duplicate invocation)
            found, value = self._fetch(task)
            if found:
                given.add(task)
                for i in outputs[task]:
                    yield self.nodes[i], value
        with self._waiting:  # the waiter has set the outcome
            pass
        values = self._result(None, None)
        for i, (node, value) in enumerate(zip(self.nodes, values, strict=True)):
            if self._sub.frozen.output_ids[i] not in given:
                yield node, value

    def _plain_outputs(self) -> dict[int, list[int]]:
        """Requested tasks that are not maps, each with its positions in the request."""
        graph = view(self._sub.frozen.graph)
        out: dict[int, list[int]] = {}
        for i, t in enumerate(self._sub.frozen.output_ids):
            if not (isinstance(graph, MapView) and graph.is_map(t)):
                out.setdefault(t, []).append(i)
        return out

    def _fetch(self, task: int) -> tuple[bool, Any]:
        s = self.session
        got = s._run(s.storage.results(self.id, [task]))
        blob = got.outputs.get(task)
        if blob is None:  # the run ended and its keys are gone: the final values have it
            return False, None
        return True, loads_value(blob, value_place(self.id, task))

    def cancel(self) -> bool:
        """Stops the run: no task of it starts from now on, anywhere; its tasks still running
        are stopped after the backend's grace period (LocalProcesses: ``abandon_grace_s``);
        its keys are deleted; it reads ``cancelled`` (``shoal runs``) and ``result()`` raises
        :class:`~shoal.RunCancelled`. Returns False if it had ended already."""
        s = self.session
        s._stop_watching(self.id)

        async def go() -> bool:
            stopped = await s.storage.cancel(self.id, "cancelled")
            await s.backend.cancel(self.id)
            return stopped

        stopped = s._run(go())
        with self._waiting:  # a waiter in another thread sees RUN_CANCELLED and cleans up
            if self._outcome is None:
                self._wait(None, None)
        return stopped

    def _wait(self, timeout: float | None, also: ProgressHook | None) -> None:
        s = self.session
        s._stop_watching(self.id)  # the waiting client watches it from here on
        progress = RunProgress(len(self._sub.frozen.graph), f"run {self.id}", s.progress)
        hook: ProgressHook = progress
        if also is not None:

            def hook(fields: Fields) -> None:
                progress(fields)
                also(fields)

        try:
            try:
                with progress:
                    values = s._run(
                        wait(self._sub, s.storage, s.backend, s.settings, timeout, hook)
                    )
            except TaskError:
                s._run(s._record(self._sub))  # its completed tasks were measured all the same
                raise
            s._run(s._record(self._sub))
            self._outcome = tuple(values)
        except (KeyboardInterrupt, SystemExit):
            # The wait cancelled the run and deleted its keys before the interrupt went on.
            self._outcome = RunCancelled(f"run {self.id} was cancelled (interrupted)")
            raise
        except BaseException as e:
            self._outcome = e
        finally:
            s._runs.pop(self.id, None)

    def events(self) -> Iterator[Event]:
        """The run's events in order, from the start, as typed records (see
        :mod:`shoal.events`); follows a live run until it ends."""
        s = self.session
        after = "0"
        while True:
            batch = s._run(s.storage.read_events(self.id, after, block_s=1.0))
            for entry_id, fields in batch:
                after = entry_id
                ev = decode(fields, entry_id)
                yield ev
                if ev.type in TERMINAL:
                    return
            if not batch and self._outcome is not None:
                return

    async def events_async(self) -> AsyncIterator[Event]:
        """``events()`` for ``async for``: each read runs in a thread, so the caller's loop
        keeps going while the run's stream is quiet."""
        stream = self.events()
        done = object()
        while (ev := await asyncio.to_thread(next, stream, done)) is not done:
            assert isinstance(ev, Event)
            yield ev

    def __repr__(self) -> str:
        state = "pending" if self._outcome is None else "done"
        return f"<shoal.Run {self.id} {state}>"


def check_timeout(timeout: float | None) -> None:
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        raise UsageError(f"timeout must be a positive number of seconds, got {timeout!r}")
