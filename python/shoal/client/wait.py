"""Waiting for a run: block on its event stream until it ends, collect, clean up.

The client blocks on the run's event stream (XREAD BLOCK, no polling) until RUN_COMPLETED,
RUN_FAILED or RUN_CANCELLED, feeding a progress hook on the way and ticking the
:mod:`.watchdog`; then it fetches the results and deletes every key of the run except the event
stream (kept with a TTL). A waiter that gives up (a timeout, an interrupt) cancels the run first,
so no task of it starts anywhere after.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from .. import events
from ..backends.base import Backend
from ..config import Settings
from ..errors import RunCancelled, RunTimeout, StorageError, TaskError
from ..runtime.elements import MapView, view
from ..serialize import loads_value, value_place
from ..storage.base import Storage
from .remote_error import task_error
from .submit import Submitted
from .watchdog import Watchdog

#: How often the waiting client wakes up to check the run timeout (it is woken by events too).
WAIT_SLICE_S = 1.0
#: Longest pause between two reads of a busy stream. Events pile up meanwhile and come in one
#: read: a busy run costs the server ~50 reads a second instead of one per event. The pause is
#: also at most 1/20 of the run's age, so a short run's end is seen within a fraction of it.
READ_BATCH_S = 0.02


#: Sees every entry of the stream as it comes, as its fields (decoding each would cost the client
#: a few microseconds per task; a hook decodes what it needs with ``events.decode``), and an
#: empty entry (:data:`TICK`) when a read brought none.
ProgressHook = Callable[[events.Fields], None]
#: What a progress hook gets when time passed without events.
TICK: events.Fields = {}


async def wait(
    sub: Submitted,
    storage: Storage,
    backend: Backend,
    settings: Settings,
    timeout: float | None = None,
    on_event: ProgressHook | None = None,
) -> list[Any]:
    """Blocks on the event stream until the run ends; returns the requested values in order."""
    began = time.monotonic()
    deadline = None if timeout is None else began + timeout
    after = "0"
    failed: events.TaskFailed | None = None
    closing = False
    watch = Watchdog(sub, storage, backend, settings)
    try:
        while True:
            await watch.tick()
            block = min(WAIT_SLICE_S, watch.every)
            if deadline is not None:
                block = min(block, deadline - time.monotonic())
                if block <= 0:
                    raise RunTimeout(
                        f"run {sub.run_id} did not finish within {timeout} s "
                        f"({len(sub.frozen.graph)} tasks)"
                    )
            batch = await storage.read_events(sub.run_id, after, block_s=block)
            for entry_id, fields in batch:
                after = entry_id
                if on_event is not None:
                    on_event(fields)
                kind = fields.get("type")
                if kind in events.TERMINAL:
                    await _settle_output(backend)
                if kind == events.RunCompleted.type:
                    return await _collect(sub, storage)
                if kind == events.TaskFailed.type:
                    ev = events.decode(fields, entry_id)
                    assert isinstance(ev, events.TaskFailed)
                    failed = ev
                if kind == events.RunFailed.type:
                    raise task_error(failed, sub.run_id)
                if kind == events.RunCancelled.type:
                    ev = events.decode(fields, entry_id)
                    assert isinstance(ev, events.RunCancelled)
                    raise RunCancelled(f"run {sub.run_id} was cancelled ({ev.reason})")
            if batch:
                await asyncio.sleep(min(READ_BATCH_S, (time.monotonic() - began) / 20))
            elif on_event is not None:
                on_event(TICK)  # time passed: a progress line can say which task runs long
    except GeneratorExit:
        closing = True  # the coroutine is closed with its loop: nothing can be awaited now
        raise
    except BaseException as e:
        reason = _gave_up(e)
        if reason is not None:  # no task of it starts from here on
            with contextlib.suppress(StorageError):
                await storage.cancel(sub.run_id, reason)
        await backend.cancel(sub.run_id)  # its hung tasks must not keep their slots
        raise
    finally:
        if not closing:
            with contextlib.suppress(StorageError):  # a gone server keeps nothing to clean
                await storage.cleanup(sub.run_id, sub.extra_keys)


async def _settle_output(backend: Backend) -> None:
    """Lets what the run's workers printed reach the screen before its result or error. Only a
    backend that forwards its workers' output has this (LocalProcesses)."""
    settle = getattr(backend, "settle_output", None)
    if settle is not None:
        await settle()


def _gave_up(e: BaseException) -> str | None:
    """Why the waiter gave up on a run that has not ended, or None (it ended: failed)."""
    if isinstance(e, RunTimeout):
        return "timeout"
    if isinstance(e, KeyboardInterrupt | SystemExit | asyncio.CancelledError):
        return "interrupted"
    return None


async def _collect(sub: Submitted, storage: Storage) -> list[Any]:
    graph = view(sub.frozen.graph)
    maps = {}
    if isinstance(graph, MapView):  # a requested map's value is the list of its elements'
        maps = {t: graph.element_base(t) for t in sub.distinct_outputs if graph.is_map(t)}
    plain = [t for t in sub.distinct_outputs if t not in maps]
    got = await storage.results(sub.run_id, plain, lists=maps)
    missing = [t for t in plain if t not in got.outputs] + [m for m in maps if m not in got.lists]
    if missing:
        raise TaskError("<run>", "MissingOutput", f"outputs of tasks {missing} are missing")
    rid = sub.run_id
    values: dict[int, Any] = {
        t: loads_value(b, value_place(rid, t)) for t, b in got.outputs.items()
    }
    for m, blobs in got.lists.items():
        values[m] = [loads_value(b, value_place(rid, maps[m] + i)) for i, b in enumerate(blobs)]
    return [values[t] for t in sub.frozen.output_ids]
