"""The worker's thin async I/O shell around :class:`~.machine.WorkerMachine`.

One invocation in, one loop: take the machine's next instruction, carry it out against storage
and the backend, feed the outcome back as an event. The same function serves every way shoal
runs a worker: ``scheduler="sync"`` (user code inline on the loop, one task at a time), in-process
threads, and worker processes (later: remote function platforms).

Function objects are cached by content hash for the life of the process (a warm worker skips
both the fetch and the unpickling); large constants are cached per run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import random
import sys
import time
import traceback
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import _core
from ..backends.base import Resources
from ..config import Settings
from ..errors import PayloadError, ShoalError
from ..serialize import dumps_value, loads_function, loads_leaf, loads_value
from ..signing import seal, unseal
from ..storage import keys
from ..storage.base import ErrorRecord, Event, Storage
from .elements import MapView, items_of, view
from .invocation import Invocation
from .machine import (
    Complete,
    Execute,
    Exit,
    Expand,
    Fail,
    Invoke,
    MachineConfig,
    Retry,
    TaskFailure,
    WaitInbox,
    WorkerMachine,
)
from .resources import resources_for, worker_resources

if TYPE_CHECKING:
    from ..backends.base import Backend

#: How long a pinned worker blocks on its inbox per call (it loops until its tasks are done).
INBOX_BLOCK_S = 5.0


@dataclass
class WorkerCaches:
    """State a warm worker keeps between invocations."""

    functions: dict[bytes, Callable[..., Any]] = field(default_factory=dict)
    constants: dict[tuple[str, bytes], Any] = field(default_factory=dict)
    #: Seconds to add to this host's clock to get the store's (events use one clock).
    clock_offset: float = 0.0
    #: A timed-out task's thread may still run: the process should exit after this invocation.
    tainted: bool = False

    def now(self) -> float:
        return time.time() + self.clock_offset


#: Runs a task function: inline (sync scheduler) or in a thread so the loop stays responsive.
Runner = Callable[[Callable[[], Any]], Awaitable[Any]]


async def run_inline(call: Callable[[], Any]) -> Any:
    return call()


async def run_in_thread(call: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(call)


async def run_worker(
    invocation: bytes,
    storage: Storage,
    backend: Backend,
    *,
    settings: Settings,
    caches: WorkerCaches,
    runner: Runner = run_in_thread,
    name: str | None = None,
    start_info: dict[str, str] | None = None,
    on_park: Callable[[bool], None] | None = None,
) -> None:
    """Runs one invocation to its end. Failures are reported to the run, never raised.

    ``start_info`` (cold/warm start, start latency) goes into the first TASK_STARTED event.
    ``on_park(True)`` is called when the worker starts waiting on its inbox with nothing to run,
    ``on_park(False)`` when it has work again (a pool need not count a parked worker as busy)."""
    worker_name = name or f"{os.uname().nodename}:{os.getpid()}:{id(caches) & 0xFFFF:x}"
    run_id = ""
    try:
        try:
            inv = Invocation.decode(invocation)
        except PayloadError as e:
            # Refused before anything was unpickled. Tell the run, if it can be named.
            run_id = Invocation.peek_run_id(invocation) or ""
            print(f"shoal worker {worker_name}: invocation refused: {e}", file=sys.stderr)
            raise
        run_id = inv.run_id
        shell = _Shell(inv, storage, backend, settings, caches, runner, worker_name)
        shell.start_info = dict(start_info or {"start_kind": "warm"})
        shell.on_park = on_park
        await shell.run()
    except Exception as e:
        # Infrastructure trouble (corrupt payload, storage error): fail the run clearly.
        if not run_id:
            return
        record = ErrorRecord(
            task=-1,  # not tied to one task: the worker itself could not go on
            name="<worker>",
            attempt=1,
            exc_type=type(e).__name__,
            message=str(e),
            traceback=traceback.format_exc(),
            worker=worker_name,
            time=caches.now(),
        )
        with contextlib.suppress(Exception):
            await storage.fail(run_id, record)


class _Shell:
    def __init__(
        self,
        inv: Invocation,
        storage: Storage,
        backend: Backend,
        settings: Settings,
        caches: WorkerCaches,
        runner: Runner,
        worker_name: str,
    ) -> None:
        self.inv = inv
        self.run_id = inv.run_id
        self.storage = storage
        self.backend = backend
        self.settings = settings
        self.caches = caches
        self.runner = runner
        self.worker_name = worker_name
        self.start_info: dict[str, str] = {}
        self.on_park: Callable[[bool], None] | None = None
        #: The task between its start and its completion (its lease is renewed).
        self.running: int | None = None
        self._worker_leased = False
        #: Encoded (or stored) subDAGs of map elements, by cut.
        self._blobs: dict[int, tuple[bytes | None, str | None]] = {}

    async def run(self) -> None:
        graph = await self._load_subdag()
        config = MachineConfig(
            worker_name=self.worker_name,
            inline_output_limit=self.settings.inline_output_limit,
            retry_backoff_s=self.settings.retry_backoff_s,
            encode=dumps_value,
            jitter=random.random,
        )
        inv = self.inv
        machine = WorkerMachine(graph, inv.worker, config, inv.recompute, inv.resume, inv.skip)
        self.graph = graph
        self.machine = machine
        renewing = asyncio.ensure_future(self._renew_leases())
        try:
            await self._loop(machine)
        finally:
            renewing.cancel()
            if inv.worker is not None:
                with contextlib.suppress(Exception):
                    await self.storage.release(self.run_id, [keys.worker_lease(inv.worker)])

    async def _loop(self, machine: WorkerMachine) -> None:
        inputs = {t: loads_value(b) for t, b in self.inv.inputs.items()}
        queue = deque(machine.start(self.inv.start, inputs))
        while queue:
            ins = queue.popleft()
            if isinstance(ins, Execute):
                queue.extend(await self._execute(machine, ins))
            elif isinstance(ins, Complete):
                result = await self.storage.complete(self.run_id, ins.completion)
                self.running = None
                queue.extend(machine.on_completed(ins.completion.task, result))
            elif isinstance(ins, Expand):
                x = ins.expansion
                x.event.update({"worker": self.worker_name, "time": repr(self.caches.now())})
                result = await self.storage.expand(self.run_id, x)
                self.running = None
                queue.extend(machine.on_completed(x.root, result))
            elif isinstance(ins, Invoke):
                batch = [ins]
                while queue and isinstance(queue[0], Invoke):
                    batch.append(queue.popleft())  # type: ignore[arg-type]
                await self._invoke(batch)
            elif isinstance(ins, WaitInbox):
                tasks = await self._wait_inbox(ins.worker)
                if tasks is None:
                    return  # the run ended meanwhile (failed, timed out, cleaned up)
                queue.extend(machine.on_inbox(tasks))
            elif isinstance(ins, Retry):
                await self.storage.append_event(
                    self.run_id,
                    {
                        "type": "TASK_RETRY",
                        "task": str(ins.task),
                        "attempt": str(ins.attempt),
                        "exc_type": ins.error.exc_type,
                        "message": ins.error.message,
                        "worker": self.worker_name,
                    },
                )
                await asyncio.sleep(ins.delay_s)
                queue.extend(machine.on_retry_due(ins.task))
            elif isinstance(ins, Fail):
                await self.storage.fail(self.run_id, ins.record)
            elif isinstance(ins, Exit):
                return

    async def _wait_inbox(self, worker: int) -> list[int] | None:
        if self.on_park is not None:
            self.on_park(True)
        try:
            while True:
                tasks = await self.storage.pop_inbox(self.run_id, worker, INBOX_BLOCK_S)
                if tasks:
                    return tasks
                if await self.storage.run_ended(self.run_id):
                    return None
        finally:
            if self.on_park is not None:
                self.on_park(False)

    def _held_leases(self) -> list[str]:
        held = [keys.task_lease(t) for t in self.machine.ready]
        if self.running is not None:
            held.append(keys.task_lease(self.running))
        if self.inv.worker is not None:
            held.append(keys.worker_lease(self.inv.worker))
        return held

    async def _renew_leases(self) -> None:
        """Keeps this worker's leases alive: the running task, tasks queued here, itself."""
        every = max(0.05, self.storage.lease_ttl_s / 3)
        while True:
            await asyncio.sleep(every)
            with contextlib.suppress(Exception):  # a missed renewal costs a duplicate at most
                await self.storage.renew(self.run_id, self._held_leases())

    async def _load_subdag(self) -> _core.Graph | MapView:
        blob = self.inv.subdag
        if blob is None:
            assert self.inv.subdag_name is not None
            blob = await self.storage.get_subdag(self.run_id, self.inv.subdag_name)
            if blob is None:
                raise PayloadError(
                    f"subDAG {self.inv.subdag_name!r} of run {self.run_id} is not in storage "
                    "(the run was cleaned up or never submitted)"
                )
            blob = unseal(blob, f"stored subDAG {self.inv.subdag_name!r}")
        return view(_core.Graph.decode(blob))

    async def _execute(self, machine: WorkerMachine, ins: Execute) -> list[Any]:
        g = self.graph
        task = ins.task
        # The root of a map chain runs no function: it splits its source into items.
        expanding = isinstance(g, MapView) and g.is_root(task)
        fn_hash = g.fn_hash(task)
        func = self.caches.functions.get(fn_hash)
        need_function = func is None and not expanding
        const_hashes = [
            h
            for h in ([] if expanding else g.const_hashes(task))
            if (self.run_id, h) not in self.caches.constants
        ]
        lists = {
            d: g.element_base(d) for d in ins.missing if isinstance(g, MapView) and g.is_map(d)
        }
        started: Event = {
            "type": "TASK_STARTED",
            "task": str(task),
            "name": g.name(task),
            "worker": self.worker_name,
            "attempt": str(ins.attempt),
            "time": repr(self.caches.now()),
            **self.start_info,
        }
        self.start_info = {}
        t_fetch = time.perf_counter()
        fetched_values: dict[int, Any] = {}
        input_bytes = 0
        lease = [keys.task_lease(task)]
        if self.inv.worker is not None and not self._worker_leased:
            lease.append(keys.worker_lease(self.inv.worker))
            self._worker_leased = True
        self.running = task
        # One round trip: announce (TASK_STARTED), lease, fetch what is missing.
        got = await self.storage.fetch(
            self.run_id,
            ins.missing,
            [fn_hash] if need_function else [],
            const_hashes,
            event=started,
            lease=lease,
            lists=lists,
        )
        for d in ins.missing:
            if d in lists:
                blobs = got.lists.get(d)
                if blobs is None:
                    raise ShoalError(
                        f"the outputs of map task {d}, needed by task '{g.name(task)}', "
                        "are not in storage"
                    )
                input_bytes += sum(len(b) for b in blobs)
                fetched_values[d] = [loads_value(b) for b in blobs]
                continue
            blob = got.outputs.get(d)
            if blob is None:
                raise ShoalError(
                    f"the output of task {d}, needed by task '{g.name(task)}', is not in storage"
                )
            input_bytes += len(blob)
            fetched_values[d] = loads_value(blob)
        if need_function:
            blob = got.functions.get(fn_hash)
            if blob is None:
                raise ShoalError(
                    f"the function of task '{g.name(task)}' ({fn_hash.hex()}) is not in storage"
                )
            func = loads_function(blob)
            self.caches.functions[fn_hash] = func
        for h in const_hashes:
            blob = got.constants.get(h)
            if blob is None:
                raise ShoalError(f"constant {h.hex()} of task '{g.name(task)}' is missing")
            self.caches.constants[(self.run_id, h)] = _core.decode_constant(
                unseal(blob, "a constant"), loads_leaf
            )
        fetch_s = time.perf_counter() - t_fetch
        values = {**ins.local, **fetched_values}
        if expanding:
            source = g.deps(task)[0]
            try:
                items = items_of(values[source], f"the input of shoal.map '{g.name(task)}'")
            except TypeError as e:
                failure = TaskFailure("TypeError", str(e), "", self.caches.now())
                return machine.on_failed(task, failure, retryable=False)
            return machine.on_expanded(task, items, fetched_values)
        assert func is not None
        consts = {h: self.caches.constants[(self.run_id, h)] for h in g.const_hashes(task)}
        args, kwargs = g.fill(task, [values[d] for d in g.deps(task)], loads_leaf, consts)
        timeout_s = g.options(task).timeout_s
        start = self.caches.now()
        try:
            value = await asyncio.wait_for(self.runner(lambda: func(*args, **kwargs)), timeout_s)
        except TimeoutError:
            # The thread cannot be stopped: the process is marked so that its host retires it.
            self.caches.tainted = True
            message = f"task '{g.name(task)}' ran longer than its timeout_s={timeout_s:g}"
            failure = TaskFailure("TaskTimeout", message, "", self.caches.now())
            return machine.on_failed(task, failure)
        except Exception as e:
            failure = TaskFailure(type(e).__name__, str(e), user_traceback(e), self.caches.now())
            return machine.on_failed(task, failure)
        end = self.caches.now()
        t_encode = time.perf_counter()
        out = machine.on_executed(task, value, fetched_values)
        completion = out[0].completion if isinstance(out[0], Complete) else None
        limit = self.settings.max_value_bytes
        if completion is not None and len(completion.output or b"") > limit:
            size = len(completion.output or b"")
            message = (
                f"the output of task '{g.name(task)}' encodes to {size:,} bytes, over the "
                f"single-value limit of {limit:,} bytes (setting max_value_bytes, "
                "SHOAL_MAX_VALUE_BYTES; Redis allows at most 512 MiB per value)"
            )
            failure = TaskFailure("OutputTooLarge", message, "", self.caches.now())
            return machine.on_failed(task, failure, retryable=False)
        if completion is not None:
            completion.event.update(
                {
                    "type": "TASK_COMPLETED",
                    "task": str(task),
                    "name": g.name(task),
                    "worker": self.worker_name,
                    "attempt": str(ins.attempt),
                    "start": repr(start),
                    "end": repr(end),
                    "input_bytes": str(input_bytes),
                    "fetch_s": f"{fetch_s:.6f}",
                    "output_bytes": str(len(completion.output or b"")),
                    "encode_s": f"{time.perf_counter() - t_encode:.6f}",
                }
            )
        return out

    async def _invoke(self, batch: list[Invoke]) -> None:
        items: list[tuple[bytes, Resources | None]] = []
        for ins in batch:
            if ins.subdag is None:
                assert ins.worker is not None
                inv = Invocation(self.run_id, ins.worker, tuple(ins.start), None, f"w{ins.worker}")
                items.append((inv.encode(), worker_resources(self.graph, ins.worker, ins.start)))
                continue
            blob, name = await self._subdag_blob(ins.subdag, ins.start[0])
            inv = Invocation(self.run_id, ins.worker, tuple(ins.start), blob, name, ins.inputs)
            items.append((inv.encode(), resources_for(ins.subdag, ins.start)))
        await self.backend.invoke_many(items)
        # The completion leased the tasks it made ready; handed to the platform, they are safe.
        handed = [keys.task_lease(t) for ins in batch if ins.subdag is not None for t in ins.start]
        await self.storage.release(self.run_id, handed)

    async def _subdag_blob(
        self, subdag: _core.Graph | MapView, start: int
    ) -> tuple[bytes | None, str | None]:
        """The subDAG inline, or stored under a name when it is large. The elements of a map
        share one cut, kept alive by the worker's graph: it is encoded and stored once (other
        cuts are short-lived, and an id is only a key while its object lives)."""
        shared = isinstance(subdag, MapView) and subdag.shared
        cached = self._blobs.get(id(subdag)) if shared else None
        if cached is not None:
            return cached
        blob = subdag.encode()
        found: tuple[bytes | None, str | None] = (blob, None)
        if len(blob) > self.settings.inline_subdag_limit:
            found_el = self.graph.element(start) if isinstance(self.graph, MapView) else None
            name = f"t{start}" if found_el is None else f"m{found_el[0]}"
            await self.storage.put_subdag(self.run_id, name, seal(blob))
            found = (None, name)
        if shared:
            self._blobs[id(subdag)] = found
        return found


_INTERNAL = (
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),  # the shoal package
    os.path.dirname(asyncio.__file__),
    os.path.dirname(concurrent.futures.__file__),
)


def user_traceback(e: BaseException) -> str:
    """The traceback from the user's function down: shoal's and asyncio's frames dropped."""
    tb = e.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_INTERNAL):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(e), e, tb or e.__traceback__))
