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
from ..storage.base import ErrorRecord, Event, Storage
from .invocation import Invocation
from .machine import (
    Complete,
    Execute,
    Exit,
    Fail,
    Invoke,
    MachineConfig,
    Retry,
    TaskFailure,
    WaitInbox,
    WorkerMachine,
)

if TYPE_CHECKING:
    from ..backends.base import Backend

#: A task with nothing to fetch is announced (TASK_STARTED) on its own after running this long;
#: a shorter one's announcement rides in its completion.
ANNOUNCE_AFTER_S = 0.05
#: How long a pinned worker blocks on its inbox per call (it loops until its tasks are done).
INBOX_BLOCK_S = 5.0


@dataclass
class WorkerCaches:
    """State a warm worker keeps between invocations."""

    functions: dict[bytes, Callable[..., Any]] = field(default_factory=dict)
    constants: dict[tuple[str, bytes], Any] = field(default_factory=dict)
    #: Seconds to add to this host's clock to get the store's (events use one clock).
    clock_offset: float = 0.0

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
        inv = Invocation.decode(invocation)
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

    async def run(self) -> None:
        graph = await self._load_subdag()
        config = MachineConfig(
            worker_name=self.worker_name,
            inline_output_limit=self.settings.inline_output_limit,
            retry_backoff_s=self.settings.retry_backoff_s,
            encode=dumps_value,
            jitter=random.random,
        )
        machine = WorkerMachine(graph, self.inv.worker, config)
        self.graph = graph
        inputs = {t: loads_value(b) for t, b in self.inv.inputs.items()}
        queue = deque(machine.start(self.inv.start, inputs))
        while queue:
            ins = queue.popleft()
            if isinstance(ins, Execute):
                queue.extend(await self._execute(machine, ins))
            elif isinstance(ins, Complete):
                result = await self.storage.complete(self.run_id, ins.completion)
                queue.extend(machine.on_completed(ins.completion.task, result))
            elif isinstance(ins, Invoke):
                batch = [ins]
                while queue and isinstance(queue[0], Invoke):
                    batch.append(queue.popleft())  # type: ignore[arg-type]
                await self._invoke(batch)
            elif isinstance(ins, WaitInbox):
                if self.on_park is not None:
                    self.on_park(True)
                tasks = await self.storage.pop_inbox(self.run_id, ins.worker, INBOX_BLOCK_S)
                while not tasks:
                    tasks = await self.storage.pop_inbox(self.run_id, ins.worker, INBOX_BLOCK_S)
                if self.on_park is not None:
                    self.on_park(False)
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

    async def _load_subdag(self) -> _core.Graph:
        blob = self.inv.subdag
        if blob is None:
            assert self.inv.subdag_name is not None
            blob = await self.storage.get_subdag(self.run_id, self.inv.subdag_name)
            if blob is None:
                raise PayloadError(
                    f"subDAG {self.inv.subdag_name!r} of run {self.run_id} is not in storage "
                    "(the run was cleaned up or never submitted)"
                )
        return _core.Graph.decode(blob)

    async def _execute(self, machine: WorkerMachine, ins: Execute) -> list[Any]:
        g = self.graph
        task = ins.task
        fn_hash = g.fn_hash(task)
        func = self.caches.functions.get(fn_hash)
        const_hashes = [
            h for h in g.const_hashes(task) if (self.run_id, h) not in self.caches.constants
        ]
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
        announced: asyncio.Future[str] | None = None
        timer: asyncio.TimerHandle | None = None
        if ins.missing or func is None or const_hashes:
            # TASK_STARTED travels in the fetch's round trip.
            got = await self.storage.fetch(
                self.run_id,
                ins.missing,
                [] if func is not None else [fn_hash],
                const_hashes,
                event=started,
            )
            for d in ins.missing:
                blob = got.outputs.get(d)
                if blob is None:
                    raise ShoalError(
                        f"the output of task {d}, needed by task "
                        f"'{g.name(task)}', is not in storage"
                    )
                input_bytes += len(blob)
                fetched_values[d] = loads_value(blob)
            if func is None:
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
                self.caches.constants[(self.run_id, h)] = _core.decode_constant(blob, loads_leaf)
        else:
            # Nothing to fetch: a task that ends within ANNOUNCE_AFTER_S has its TASK_STARTED
            # appended by its completion (same script, no extra command); a longer one is
            # announced while it runs, so watchers see it running.
            def announce() -> None:
                nonlocal announced
                announced = asyncio.ensure_future(self.storage.append_event(self.run_id, started))

            timer = asyncio.get_running_loop().call_later(ANNOUNCE_AFTER_S, announce)
        fetch_s = time.perf_counter() - t_fetch
        values = {**ins.local, **fetched_values}
        consts = {h: self.caches.constants[(self.run_id, h)] for h in g.const_hashes(task)}
        args, kwargs = g.fill(task, [values[d] for d in g.deps(task)], loads_leaf, consts)
        start = self.caches.now()
        try:
            value = await self.runner(lambda: func(*args, **kwargs))
        except Exception as e:
            failure = TaskFailure(type(e).__name__, str(e), user_traceback(e), self.caches.now())
            if timer is not None and announced is None:
                timer.cancel()
                announced = asyncio.ensure_future(self.storage.append_event(self.run_id, started))
            return machine.on_failed(task, failure)
        finally:
            if timer is not None:
                timer.cancel()
            if announced is not None:
                await announced  # TASK_STARTED must precede the task's next event
        end = self.caches.now()
        t_encode = time.perf_counter()
        out = machine.on_executed(task, value, fetched_values)
        completion = out[0].completion if isinstance(out[0], Complete) else None
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
            if timer is not None and announced is None:
                completion.started_event.update(started)
        return out

    async def _invoke(self, batch: list[Invoke]) -> None:
        items: list[tuple[bytes, Resources | None]] = []
        for ins in batch:
            if ins.subdag is None:
                inv = Invocation(self.run_id, ins.worker, tuple(ins.start), None, f"w{ins.worker}")
                items.append((inv.encode(), None))
                continue
            blob = ins.subdag.encode()
            if len(blob) <= self.settings.inline_subdag_limit:
                inv = Invocation(self.run_id, ins.worker, tuple(ins.start), blob, None, ins.inputs)
            else:
                name = f"t{ins.start[0]}"
                await self.storage.put_subdag(self.run_id, name, blob)
                inv = Invocation(self.run_id, ins.worker, tuple(ins.start), None, name, ins.inputs)
            items.append((inv.encode(), resources_for(ins.subdag, ins.start)))
        await self.backend.invoke_many(items)


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


def resources_for(graph: _core.Graph, tasks: list[int] | tuple[int, ...]) -> Resources | None:
    """The largest ``memory_mb`` among ``tasks`` (None when none asks for a limit)."""
    sizes = [mb for t in tasks if (mb := graph.options(t)[1]) is not None]
    return Resources(memory_mb=max(sizes)) if sizes else None
