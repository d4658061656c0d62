"""The client side of a run: submit a frozen graph, wait on its event stream, collect, clean up.

Submission stores the function table, constants and pinned workers' subDAGs in one storage call,
appends RUN_SUBMITTED, then invokes one worker per root group: each flexible root gets its own
worker with the subDAG below it (inline when small); each pinned worker with a root is invoked
with its roots. The client then blocks on the run's event stream (no polling) until
RUN_COMPLETED or RUN_FAILED, feeding a progress bar on the way, fetches the results and deletes
every key of the run except the event stream (kept with a TTL).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..backends.base import Backend, Resources
from ..config import Settings
from ..errors import PayloadError, RunTimeout, ShoalError, StorageError, TaskError
from ..graph import FrozenGraph
from ..serialize import loads_value
from ..signing import seal
from ..storage import keys
from ..storage.base import Event, RunSpec, Storage
from .elements import MapView, view
from .invocation import Invocation
from .recovery import recovery_invocation
from .resources import resources_for, worker_resources

#: How often the waiting client wakes up to check the run timeout (it is woken by events too).
WAIT_SLICE_S = 1.0
#: Longest pause between two reads of a busy stream. Events pile up meanwhile and come in one
#: read: a busy run costs the server ~50 reads a second instead of one per event. The pause is
#: also at most 1/20 of the run's age, so a short run's end is seen within a fraction of it.
READ_BATCH_S = 0.02


def new_run_id() -> str:
    return uuid.uuid4().hex[:16]


@dataclass
class Submitted:
    run_id: str
    frozen: FrozenGraph
    distinct_outputs: list[int]
    extra_keys: list[str]
    submitted_at: float


async def submit(
    frozen: FrozenGraph,
    storage: Storage,
    backend: Backend,
    settings: Settings,
    run_id: str | None = None,
) -> Submitted:
    run_id = run_id or new_run_id()
    graph = frozen.graph
    outputs = list(dict.fromkeys(frozen.output_ids))
    workers = sorted({w for w, _ in graph.partition() if w is not None})
    subdags = {f"w{w}": graph.subdag_for(w, []).encode() for w in workers}
    invocations: list[tuple[Invocation, Resources | None]] = []
    pinned_roots: dict[int, list[int]] = {}
    for root in graph.roots():
        w = graph.worker(root)
        if w is None:
            blob = graph.subdag_for(None, [root]).encode()
            res = resources_for(graph, [root])
            if len(blob) <= settings.inline_subdag_limit:
                invocations.append((Invocation(run_id, None, (root,), blob, None), res))
            else:
                subdags[f"t{root}"] = blob
                invocations.append((Invocation(run_id, None, (root,), None, f"t{root}"), res))
        else:
            pinned_roots.setdefault(w, []).append(root)
    for w, roots in pinned_roots.items():
        res = worker_resources(graph, w, graph.tasks_of(w))
        invocations.append((Invocation(run_id, w, tuple(roots), None, f"w{w}"), res))
    spec = RunSpec(
        run_id=run_id,
        functions={h: seal(b) for h, b in frozen.functions.items()},
        constants={h: seal(b) for h, b in frozen.constants.items()},
        subdags={name: seal(b) for name, b in subdags.items()},
        outputs=outputs,
        started_workers=list(pinned_roots),
        ttl_s=keys.RUN_TTL_S,
        events_ttl_s=keys.EVENTS_TTL_S,
    )
    now = await storage.server_time()  # one clock for every event of the run
    await storage.submit(
        spec,
        {
            "type": "RUN_SUBMITTED",
            "tasks": str(len(graph)),
            "outputs": str(len(outputs)),
            "names": ", ".join(dict.fromkeys(graph.name(t) for t in outputs))[:200],
            "time": repr(now),
        },
    )
    await backend.invoke_many([(inv.encode(), res) for inv, res in invocations])
    extra = [keys.inbox(run_id, w) for w in workers]
    return Submitted(run_id, frozen, outputs, extra, now)


ProgressHook = Callable[[Event], None]


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
    failed: Event = {}
    watch = _Watchdog(sub, storage, backend, settings)
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
            for entry_id, ev in batch:
                after = entry_id
                if on_event is not None:
                    on_event(ev)
                kind = ev.get("type")
                if kind == "RUN_COMPLETED":
                    return await _collect(sub, storage)
                if kind == "TASK_FAILED":
                    failed = ev
                if kind == "RUN_FAILED":
                    raise _task_error(failed)
            if batch:
                await asyncio.sleep(min(READ_BATCH_S, (time.monotonic() - began) / 20))
    except BaseException:
        await backend.cancel()
        raise
    finally:
        with contextlib.suppress(StorageError):  # a gone server keeps nothing to clean
            await storage.cleanup(sub.run_id, sub.extra_keys)


class _Watchdog:
    """Finds expired leases (dead workers) and sends recovery invocations; notices a run whose
    state vanished from the server. A bounded periodic check: one script call per interval."""

    def __init__(
        self, sub: Submitted, storage: Storage, backend: Backend, settings: Settings
    ) -> None:
        self.sub, self.storage, self.backend, self.settings = sub, storage, backend, settings
        self.active = backend.capabilities.workers_may_die
        self.every = min(1.0, max(0.05, storage.lease_ttl_s / 2))
        self._next = time.monotonic() + self.every
        self.recovered = 0
        self.graph = view(sub.frozen.graph)

    async def tick(self) -> None:
        if not self.active or time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self.every
        expired = await self.storage.expired(self.sub.run_id)
        if expired is None:
            raise StorageError(
                f"the state of run {self.sub.run_id} is gone from the server (it restarted "
                "without persistence, or the keys were deleted); the run cannot finish"
            )
        graph = self.graph
        items = []
        for member in expired:
            inv = await recovery_invocation(
                self.sub.run_id, graph, member, self.storage, self.settings
            )
            if inv is None:
                continue
            self.recovered += 1
            await self.storage.append_event(
                self.sub.run_id,
                {"type": "WORKER_LOST", "lease": member, "recovery_start": str(list(inv.start))},
            )
            tasks = list(inv.start) or list(inv.resume)
            items.append((inv.encode(), resources_for(graph, tasks)))
        await self.backend.invoke_many(items)


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
    values: dict[int, Any] = {t: loads_value(b) for t, b in got.outputs.items()}
    values.update({m: [loads_value(b) for b in blobs] for m, blobs in got.lists.items()})
    return [values[t] for t in sub.frozen.output_ids]


def _task_error(ev: Event) -> ShoalError:
    if ev.get("name") == "<worker>" and ev.get("exc_type") == "PayloadError":
        return PayloadError(
            f"a worker refused a payload of this run: {ev.get('message', '')} "
            f"(worker {ev.get('worker', '?')})"
        )
    return TaskError(
        ev.get("name", "?"),
        ev.get("exc_type", "Exception"),
        ev.get("message", ""),
        ev.get("traceback", ""),
        attempts=int(ev.get("attempt", "1")),
        worker=ev.get("worker"),
    )


async def run_to_end(
    frozen: FrozenGraph,
    storage: Storage,
    backend: Backend,
    settings: Settings,
    timeout: float | None = None,
    on_event: ProgressHook | None = None,
) -> list[Any]:
    sub = await submit(frozen, storage, backend, settings)
    values = await wait(sub, storage, backend, settings, timeout, on_event)
    await asyncio.wait_for(backend.drain(), timeout=30)
    return values
