"""The worker's async I/O shell around :class:`~.machine.WorkerMachine`: one invocation, one loop.

Take the machine's next instruction, carry it out against storage and the backend, feed the
outcome back to :meth:`~.machine.WorkerMachine.handle` as an event. The same loop serves every
way shoal runs a worker: ``scheduler="sync"`` (user code inline on the loop, one task at a time),
in-process threads, and worker processes (later: remote function platforms). Fetching inputs
lives in :mod:`.inputs`, the events the worker writes in :mod:`.reports`.

While it runs, the shell keeps its leases alive (the running task, tasks queued here, and on a
pinned worker the worker itself) by renewing them every third of their lifetime; its first START
takes over the hand-off leases of the work it received, and work it hands to peers keeps a
hand-off lease until they start it (see :func:`shoal.storage.keys.leases`).

Crashes. A task whose workers died while running it has a crash record in the store; when it has
as many crashes as it may have (``crash_attempts``, or ``retries`` + 1 if more), the next worker
to start it fails it instead of dying in turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import random
import time
import traceback
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .. import _core
from ..backends.base import Resources
from ..config import Settings
from ..errors import PayloadError
from ..metrics.upload import MetricsBuffer, parse_upload
from ..optimizations.policy import policy_for
from ..persist import READS_KEPT_VALUE
from ..serialize import dumps_value, error_place, loads_leaf, loads_value, value_place
from ..signing import context, seal, unseal
from ..storage import keys
from ..storage.base import ErrorRecord, Fetched, Storage
from ..storage.state import refused
from . import context as worker_context
from . import failures, output
from .elements import MapView, items_of, view
from .inline import FAST_TASK_S, LeaseGuard, Pause, PauseMeter
from .inputs import StartAsk, TaskInputs, WorkerCaches, fetch_inputs, received, start_ask
from .invocation import Invocation
from .machine import (
    Complete,
    Completed,
    Execute,
    Executed,
    Exit,
    Expand,
    Expanded,
    Fail,
    Failed,
    InboxPopped,
    Instruction,
    Invoke,
    MachineConfig,
    MachineEvent,
    Retry,
    RetryDue,
    Started,
    WaitInbox,
    WorkerMachine,
)
from .reports import Reporter, StartInfo, SubdagInfo, worker_label
from .resources import resources_for, worker_resources

if TYPE_CHECKING:
    from ..backends.base import Backend

log = logging.getLogger("shoal.worker")


class _NeedsThread(Exception):
    """The inline call found it needs a thread of its own (it runs an event loop itself)."""


class _TimedOut(Exception):
    """The task ran past its ``timeout_s`` (not a TimeoutError the function raised)."""


__all__ = ["Runner", "WorkerCaches", "run_in_thread", "run_inline", "run_worker"]

#: How long a pinned worker blocks on its inbox per call (it loops until its tasks are done).
INBOX_BLOCK_S = 5.0

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
    start_info: StartInfo | None = None,
    on_park: Callable[[bool], None] | None = None,
    on_task: Callable[[str, int], None] | None = None,
) -> None:
    """Runs one invocation to its end. Failures are reported to the run, never raised.

    ``start_info`` (cold/warm start, start latency) goes into the first TASK_STARTED event.
    ``on_park(True)`` is called when the worker starts waiting on its inbox with nothing to run,
    ``on_park(False)`` when it has work again (a pool need not count a parked worker as busy).
    ``on_task(run_id, task)`` is called as each task starts (a pool that sees the process die
    reports the crash of that task)."""
    base_name = name or f"{os.uname().nodename}:{os.getpid()}:{id(caches) & 0xFFFF:x}"
    worker_name = base_name
    run_id = ""
    shell: _Shell | None = None
    try:
        try:
            inv = Invocation.decode(invocation)
        except PayloadError as e:
            # Refused before anything was unpickled. Tell the run, if it can be named.
            run_id = Invocation.peek_run_id(invocation) or ""
            log.error("shoal worker %s: invocation refused: %s", worker_name, e)
            raise
        run_id = inv.run_id
        worker_name = worker_label(base_name, inv.worker)
        shell = _Shell(inv, storage, backend, settings, caches, runner, worker_name)
        shell.start_info = start_info or StartInfo()
        shell.on_park = on_park
        shell.on_task = on_task
        await shell.run()
    except Exception as e:
        # Infrastructure trouble (corrupt payload, storage error): fail the run clearly, with
        # what the machine saw last.
        if not run_id:
            return
        trace = traceback.format_exc()
        machine = getattr(shell, "machine", None)
        if machine is not None:
            trace += "\n" + machine.format_log()
            log.error("shoal worker %s failed:\n%s", worker_name, trace)
        record = ErrorRecord(
            task=-1,  # not tied to one task: the worker itself could not go on
            name="<worker>",
            attempt=1,
            exc_type=type(e).__name__,
            message=str(e),
            traceback=trace,
            worker=worker_name,
            time=caches.now(),
        )
        with contextlib.suppress(Exception):
            await storage.fail(run_id, record)


class _Shell:
    machine: WorkerMachine
    graph: _core.Graph | MapView
    reporter: Reporter

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
        self.start_info = StartInfo()
        self.metrics = MetricsBuffer(parse_upload(inv.metrics or settings.metrics))
        self.on_park: Callable[[bool], None] | None = None
        self._inner: worker_context.WorkerContext | None = None  # what a task's own compute() uses
        self._inner_inline: worker_context.WorkerContext | None = None  # the same, inline
        self.on_task: Callable[[str, int], None] | None = None
        #: The task between its start and its completion (its lease is renewed).
        self.running: int | None = None
        #: Whether a START took this worker's leases yet (its own, its queued tasks').
        self._leased = False
        #: A start that rode with the last completion: what was asked, the answer, and when
        #: it was sent (see ``Storage.complete(..., then=...)``).
        self._riding: tuple[StartAsk, Fetched, float] | None = None
        #: Encoded (or stored) subDAGs of map elements, by cut.
        self._blobs: dict[int, tuple[bytes | None, str | None]] = {}

    async def run(self) -> None:
        graph, subdag = await self._load_subdag()
        config = MachineConfig(
            worker_name=self.worker_name,
            inline_output_limit=self.settings.inline_output_limit,
            retry_backoff_s=self.settings.retry_backoff_s,
            encode=functools.partial(_encode, self.run_id),
            jitter=random.random,
            policy=policy_for(graph, self.backend.capabilities.parallelism),
        )
        inv = self.inv
        self.graph = graph
        self.machine = WorkerMachine(graph, inv.worker, config, inv.recompute, inv.resume, inv.skip)
        self.reporter = Reporter(
            self.worker_name,
            inv.worker,
            self.start_info,
            subdag,
            identity_of=self.caches.identity_of,
            invoked_by=inv.invoked_by,
            invoked_at=inv.invoked_at,
        )
        renewing = asyncio.ensure_future(self._renew_leases())
        uploading = None
        if self.metrics.upload.kind == "every":
            uploading = asyncio.ensure_future(self._upload_every(self.metrics.upload.n))
        reason = "failed"
        try:
            reason = await self._loop()
        finally:
            renewing.cancel()
            if uploading is not None:
                uploading.cancel()
                await asyncio.wait([uploading])  # an append it had begun is back in the buffer
            with contextlib.suppress(Exception):  # what the invocation still holds, at its end
                await self._upload()
            if inv.worker is not None:
                exited = self.reporter.exited(reason, self.caches.now())
                with contextlib.suppress(Exception):
                    lease = [keys.worker_lease(inv.worker)]
                    await self.storage.release(self.run_id, lease, exited)

    async def _upload(self) -> None:
        """Appends the buffered metric records (see :mod:`shoal.metrics.upload`); records
        whose append fails or is interrupted stay buffered, and the error goes on."""
        if not self.metrics.pending:
            return
        taken = self.metrics.take()
        try:
            await self.storage.append_events(self.run_id, taken)
        except BaseException:
            self.metrics.put_back(taken)
            raise

    async def _upload_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            with contextlib.suppress(Exception):  # the next tick, or the invocation's end
                await self._upload()

    async def _loop(self) -> str:
        """Carries out instructions until the machine says exit; returns why it did."""
        rid = self.run_id
        inputs = {t: loads_value(b, value_place(rid, t)) for t, b in self.inv.inputs.items()}
        queue = deque(self.machine.handle(Started(self.inv.start, inputs)))
        while queue:
            ins = queue.popleft()
            if isinstance(ins, Invoke):
                batch = [ins]
                while queue and isinstance(queue[0], Invoke):
                    batch.append(queue.popleft())  # type: ignore[arg-type]
                await self._invoke(batch)
                continue
            if isinstance(ins, Exit):
                return ins.reason
            event = await self._carry_out(ins)
            if event is None:
                return "run ended"  # failed, timed out or cleaned up while parked
            queue.extend(self.machine.handle(event))
        return "no more work"

    async def _carry_out(self, ins: Instruction) -> MachineEvent | None:
        """One instruction against storage; the event it leads to (None: the run ended)."""
        if isinstance(ins, Execute):
            return await self._execute(ins)
        if isinstance(ins, Complete):
            then = ins.then if self._leased else None
            ask = None
            if then is not None:
                ask = self._ask(then, [keys.running_lease(then.task)], ins.then_if_ready)
            began = time.perf_counter()
            result = await self.storage.complete(
                self.run_id, ins.completion, None if ask is None else ask.start
            )
            self.running = None
            self.metrics.confirm(result.first)
            if ask is not None and result.started is not None:
                # Said once it started, not when asked: a worker that parks instead (its
                # next task did not become ready) is not running it. A death in between is
                # noticed by the running lease the start took.
                self.running = ask.start.task
                self._riding = (ask, result.started, began)
                if self.on_task is not None:
                    self.on_task(self.run_id, ask.start.task)
            if self.metrics.due():
                with contextlib.suppress(Exception):  # records wait for the next upload
                    await self._upload()
            return Completed(ins.completion.task, result)
        if isinstance(ins, Expand):
            x = ins.expansion
            elements = x.width * len(x.maps)
            x.event.update(self.reporter.expanded(self.graph, x.root, elements, self.caches.now()))
            result = await self.storage.expand(self.run_id, x)
            self.running = None
            return Completed(x.root, result)
        if isinstance(ins, WaitInbox):
            tasks = await self._wait_inbox(ins.worker)
            return None if tasks is None else InboxPopped(tasks)
        if isinstance(ins, Retry):
            retry = self.reporter.retry(
                self.graph,
                ins.task,
                ins.attempt,
                ins.error.exc_type,
                ins.error.message,
                ins.delay_s,
            )
            await self.storage.append_event(self.run_id, retry)
            await asyncio.sleep(ins.delay_s)
            return RetryDue(ins.task)
        if isinstance(ins, Fail):
            await self.storage.fail(self.run_id, ins.record)
            return None
        raise TypeError(f"unknown instruction {ins!r}")

    async def _wait_inbox(self, worker: int) -> list[int] | None:
        if self.on_park is not None:
            self.on_park(True)
        began = time.perf_counter()
        try:
            while True:
                tasks = await self.storage.pop_inbox(self.run_id, worker, INBOX_BLOCK_S)
                if tasks:
                    return tasks
                if await self.storage.run_ended(self.run_id):
                    return None
        finally:
            self.reporter.tally.parked_s += time.perf_counter() - began
            if self.on_park is not None:
                self.on_park(False)

    def _ask(self, ins: Execute, lease: list[str], if_ready: bool = False) -> StartAsk:
        """What starting ``ins.task`` asks the store for, taking ``lease`` (alone, or riding
        with a completion: then only ``if_ready`` when that completion is what makes it
        ready)."""
        g, task = self.graph, ins.task
        return start_ask(
            self.run_id,
            g,
            task,
            ins.local,
            ins.missing,
            self.caches,
            event=self.reporter.started(g, task, ins.attempt, self.caches.now()),
            lease=lease,
            expanding=isinstance(g, MapView) and g.is_root(task),
            rerun=task in self.inv.recompute,
            if_ready=if_ready,
        )

    def _held_leases(self) -> list[str]:
        held = [keys.task_lease(t) for t in self.machine.ready]
        if self.running is not None:
            held.append(keys.running_lease(self.running))
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

    async def _load_subdag(self) -> tuple[_core.Graph | MapView, SubdagInfo]:
        blob = self.inv.subdag
        if blob is None:
            assert self.inv.subdag_name is not None
            blob = await self.storage.get_subdag(self.run_id, self.inv.subdag_name)
            if blob is None:
                raise PayloadError(
                    f"subDAG {self.inv.subdag_name!r} of run {self.run_id} is not in storage "
                    "(the run was cleaned up or never submitted)"
                )
            name = self.inv.subdag_name
            blob = unseal(blob, f"stored subDAG {name!r}", context(self.run_id, "subdag", name))
        began = time.perf_counter()
        graph = view(_core.Graph.decode(blob))
        return graph, SubdagInfo(len(blob), round(time.perf_counter() - began, 6))

    async def _execute(self, ins: Execute) -> MachineEvent | None:
        g = self.graph
        task = ins.task
        # The root of a map chain runs no function: it splits its source into items.
        expanding = isinstance(g, MapView) and g.is_root(task)
        riding, self._riding = self._riding, None
        try:
            if riding is not None:
                # Started with the previous task's completion: its answer is here already.
                ask, answer, began = riding
                if ask.start.task != task:
                    raise RuntimeError(
                        f"the worker machine ran task {task}, not task {ask.start.task} that "
                        "started with the last completion"
                    )
                got = received(self.run_id, g, ask, answer, self.caches, began)
            else:
                lease = [keys.running_lease(task)]
                if not self._leased:  # take over the hand-offs of what this invocation received
                    lease += [keys.task_lease(t) for t in self.machine.ready if t != task]
                    if self.inv.worker is not None:
                        lease.append(keys.worker_lease(self.inv.worker))
                    self._leased = True
                self.running = task
                if self.on_task is not None:
                    self.on_task(self.run_id, task)
                # One round trip: announce (TASK_STARTED), lease, fetch what is missing.
                ask = self._ask(ins, lease)
                got = await fetch_inputs(self.storage, self.run_id, g, ask, self.caches)
        except ModuleNotFoundError as e:  # its function or an input needs what is not here
            missing = failures.missing_module(g.name(task), e, self.caches.now())
            return Failed(task, missing, retryable=False)
        if isinstance(got, Fetched):  # refused: nothing to run
            self.running = None
            if got.done:  # a duplicate invocation: the first one ran it
                return Completed(task, refused())
            return None  # the run ended (failed, completed, cleaned up)
        allowed = max(self.settings.crash_attempts, g.options(task).retries + 1)
        crashed = failures.crashed_too_often(g.name(task), got.crashes, allowed, self.caches.now())
        if crashed is not None:
            return Failed(task, crashed, retryable=False)
        if expanding:
            source = g.deps(task)[0]
            try:
                items = items_of(got.values[source], f"the input of shoal.map '{g.name(task)}'")
            except TypeError as e:
                return Failed(task, failures.refused("TypeError", str(e), self.caches.now()), False)
            return Expanded(task, items, got.fetched)
        func = got.function
        assert func is not None
        values = [got.values[d] for d in g.deps(task)]
        try:
            args, kwargs = g.fill(task, values, loads_leaf, got.constants)
        except ModuleNotFoundError as e:  # an argument is an object of a module not here
            missing = failures.missing_module(g.name(task), e, self.caches.now())
            return Failed(task, missing, retryable=False)
        if getattr(func, READS_KEPT_VALUE, False):  # a persisted value: read here, not by it
            args = (*args, await self.storage.kept_value(args[0]))
        timeout_s = g.options(task).timeout_s
        start = self.caches.now()
        try:
            value = await self._call(g.name(task), func, args, kwargs, timeout_s)
        except _TimedOut:
            # The thread cannot be stopped: the process is marked so that its host retires it.
            self.caches.tainted = True
            message = f"task '{g.name(task)}' ran longer than its timeout_s={timeout_s:g}"
            return Failed(task, failures.refused("TaskTimeout", message, self.caches.now()))
        except asyncio.CancelledError:
            raise  # the worker itself is being stopped
        except KeyboardInterrupt as e:
            if self.runner is run_inline:
                raise  # sync: the task runs in the user's own thread, so this is their Ctrl-C
            return Failed(task, failures.raised(e, self.caches.now()))
        except BaseException as e:
            # SystemExit (argparse, click, sys.exit) and other BaseExceptions end the task, not
            # the worker: a task failure like any other, with its retries.
            mb = self.start_info.memory_mb
            where = error_place(self.run_id, task)
            return Failed(task, failures.raised(e, self.caches.now(), mb, where))
        end = self.caches.now()
        return await self._executed(ins, Executed(task, value, got.fetched), start, end, got)

    async def _call(
        self,
        name: str,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout_s: float | None,
    ) -> Any:
        """Calls a task's function: in a thread (the runner's), or inline on the loop when it
        has been fast (see :mod:`.inline`); raises what it raised, or :class:`_TimedOut`."""
        fn = id(func)
        threaded = self.runner is run_in_thread and timeout_s is None
        inline = threaded and self.caches.inline.inline(fn)
        inside = worker_context.CURRENT.set(self._context(inline))  # a task's compute() too
        output.running = name  # what its printed lines start with
        took = [0.0]
        pause: list[Pause | None] = [None]

        def call() -> Any:
            meter = PauseMeter() if inline else None
            began = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                took[0] = time.perf_counter() - began
                if meter is not None and took[0] >= FAST_TASK_S:  # why it was long
                    pause[0] = meter.stop()

        try:
            if inline:
                with contextlib.suppress(_NeedsThread):
                    return self._inline(call, fn)
                inline = False
            if timeout_s is None:
                return await self.runner(call)
            running = asyncio.ensure_future(self.runner(call))
            try:
                return await asyncio.wait_for(asyncio.shield(running), timeout_s)
            except TimeoutError:
                if not running.done():
                    raise _TimedOut() from None
                return running.result()  # the function's own TimeoutError (or its value)
        finally:
            worker_context.CURRENT.reset(inside)
            output.running = None
            self.caches.inline.ran(fn, took[0], inline, pause[0])

    def _inline(self, call: Callable[[], Any], fn: int) -> Any:
        """Runs a short task's function on the loop (see :mod:`.inline`), the lease guard
        watching; one that needs a thread (it runs an event loop itself) gets one."""
        guard = self.caches.guard
        if guard is None:
            guard = self.caches.guard = LeaseGuard()
        every = max(0.05, self.storage.lease_ttl_s / 3)
        guard.watch(lambda: self.storage.renew_blocking(self.run_id, self._held_leases()), every)
        try:
            return call()
        except RuntimeError as e:
            if "event loop" not in str(e) or "running" not in str(e):
                raise
            # asyncio.run() or run_until_complete() inside the task: refused before it ran.
            self.caches.inline.refuse(fn)
            raise _NeedsThread() from e
        finally:
            guard.clear()

    def _context(self, inline: bool = False) -> worker_context.WorkerContext:
        if self._inner is None:
            self._inner = worker_context.WorkerContext(
                storage=self.storage,
                backend=self.backend,
                settings=self.settings,
                loop=asyncio.get_running_loop(),
                inline=self.runner is run_inline,
                on_park=self.on_park,
            )
            self._inner_inline = dataclasses.replace(self._inner, inline=True)
        chosen = self._inner_inline if inline else self._inner
        assert chosen is not None
        return chosen

    async def _executed(
        self, ins: Execute, event: Executed, start: float, end: float, got: TaskInputs
    ) -> MachineEvent:
        """Hands the value to the machine at once (it encodes what must leave this worker),
        checks the output's size, and fills in the TASK_COMPLETED event."""
        g, task = self.graph, ins.task
        t_encode = time.perf_counter()
        try:
            [complete] = self.machine.handle(event)
        except failures.NotEncodable as wrapped:  # the task's value, not the worker, is at fault
            assert wrapped.__cause__ is not None
            cause = failures.raised(wrapped.__cause__, self.caches.now())
            message = (
                f"the output of task '{g.name(task)}' ({type(event.value).__name__}) cannot be "
                f"encoded to leave its worker: {cause.message}"
            )
            failure = failures.refused(cause.exc_type, message, cause.time, cause)
            return Failed(task, failure, retryable=False)
        assert isinstance(complete, Complete)
        encode_s = time.perf_counter() - t_encode
        completion = complete.completion
        size = len(completion.output or b"")
        limit = self.settings.max_value_bytes
        if size > limit:
            message = (
                f"the output of task '{g.name(task)}' encodes to {size:,} bytes, over the "
                f"single-value limit of {limit:,} bytes (setting max_value_bytes, "
                "SHOAL_MAX_VALUE_BYTES; Redis allows at most 512 MiB per value)"
            )
            failure = failures.refused("OutputTooLarge", message, self.caches.now())
            return Failed(task, failure, retryable=False)
        completion.event.update(
            self.metrics.completed(
                self.reporter.completed(
                    g,
                    task,
                    attempt=ins.attempt,
                    start=start,
                    end=end,
                    fetched=got.stats,
                    output_bytes=size,
                    encode_s=encode_s,
                    acted=complete.acted,
                )
            )
        )
        # The completion itself is the next round trip: carry it out here.
        return await self._carry_out(complete)  # type: ignore[return-value]

    async def _invoke(self, batch: list[Invoke]) -> None:
        items: list[tuple[bytes, Resources | None]] = []
        made = self.caches.now()  # the invoked workers report their latency from here
        for ins in batch:
            if ins.subdag is None:
                assert ins.worker is not None
                inv = Invocation(
                    self.run_id,
                    ins.worker,
                    tuple(ins.start),
                    None,
                    f"w{ins.worker}",
                    metrics=self.inv.metrics,
                    invoked_by=ins.by,
                    invoked_at=made,
                )
                items.append((inv.encode(), worker_resources(self.graph, ins.worker, ins.start)))
                continue
            blob, name = await self._subdag_blob(ins.subdag, ins.start[0])
            inv = Invocation(
                self.run_id,
                ins.worker,
                tuple(ins.start),
                blob,
                name,
                ins.inputs,
                metrics=self.inv.metrics,
                invoked_by=ins.by,
                invoked_at=made,
            )
            items.append((inv.encode(), resources_for(ins.subdag, ins.start)))
        # Covered until their workers start, so a lost invocation is recovered; handed off
        # before the invocations go, or a quick receiver's START could precede (and lose) it.
        # (The pinned workers were leased as handed off by the completion that reported them.)
        handed = [keys.task_lease(t) for ins in batch if ins.subdag is not None for t in ins.start]
        await self.storage.hand_off(self.run_id, handed)
        await self.backend.invoke_many(items)

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
            await self.storage.put_subdag(
                self.run_id, name, seal(blob, context(self.run_id, "subdag", name))
            )
            found = (None, name)
        if shared:
            self._blobs[id(subdag)] = found
        return found


def _encode(run_id: str, task: int, value: Any) -> bytes:
    try:
        return dumps_value(value, value_place(run_id, task))
    except Exception as e:
        raise failures.NotEncodable() from e
