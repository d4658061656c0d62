"""Sessions: where runs go (storage + backend + settings), and the ``compute`` entry points.

- ``Session()`` is distributed: Redis storage (``redis_url``, else ``SHOAL_REDIS_URL``, else an
  embedded server started for the session) and worker processes (``LocalProcesses``).
- ``scheduler="sync"`` runs in-process, one task at a time, through the same worker code on the
  in-memory store; ``scheduler="threads"`` does the same with task functions in threads.
- ``compute()`` with no scheduler and no session uses one shared default session, created on
  first use and closed when the interpreter exits (``shoal run`` configures it).

A session is safe to use from many threads at once: its coroutines run on one loop
(:mod:`.client.loop`), in a thread of its own except in ``sync`` mode, where callers take turns.
A submitted run is watched (lost workers recovered) from its submission until it ends, whether
or not anyone waits for it yet.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import threading
import warnings
from collections.abc import Coroutine, Iterator, Mapping
from types import TracebackType
from typing import Any, TypeVar, overload

from . import lifetime
from .backends.base import Backend
from .backends.inprocess import InProcess
from .backends.local import LocalProcesses
from .client.history import Recorder, metrics_place, open_history
from .client.loop import CANCEL_GRACE_S, BorrowedLoop, CallerLoop, LoopThread, SessionLoop
from .client.submit import Submitted, submit
from .client.wait import wait
from .client.watchdog import watch
from .config import Settings, check_redis_url, redact_url
from .errors import ConfigError, StorageError, TaskError, UsageError
from .graph import FrozenGraph, freeze
from .metrics.history import History, HistoryView
from .metrics.upload import parse_upload
from .persist import DEFAULT_TTL_S, Persisted, persist
from .planners import NAMES, Planner, Problem, by_name, planned
from .planning.forecast import (
    Identity,
    forecast,
    frozen_workflow,
    identities,
    load_view,
    predictions_from,
)
from .planning.plan import Plan
from .planning.predict import parse_sla
from .planning.simulate import platform_of
from .progress import RunProgress
from .run import Run, check_timeout
from .runtime.context import WorkerContext, current
from .server import EmbeddedServer
from .storage.base import Storage
from .storage.memory import MemoryStorage
from .task import Node

SCHEDULERS: tuple[str, ...] = ("processes", "sync", "threads")
#: Longest wait at ``close()`` for recordings of ended runs still being written, seconds.
RECORD_WAIT_S = 30.0
T = TypeVar("T")
A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")
#: A plan, or {task id: worker id} pins (as a planner would make).
PlanLike = Plan | Mapping[int, int] | None
#: A planner object, or its name (``shoal.planners.NAMES``, or ``none``); None: the session's.
PlannerLike = Planner | str | None


class Session:
    """Where runs go. Use as a context manager, or call :meth:`close`.

    ``redis_url``: the server (default ``SHOAL_REDIS_URL``, else an embedded one for the life of
    the session). ``backend``: how workers start (default ``LocalProcesses()``). ``storage``: an
    explicit store (e.g. ``MemoryStorage()`` with ``InProcess``). ``progress``: show a progress
    bar (default: on a terminal, for runs longer than a second). ``metrics_url``: where run
    history goes (see :mod:`shoal.client.history`; default: the run server when it outlives the
    session, else ``~/.cache/shoal/history``; ``"off"`` records nothing).
    """

    def __init__(
        self,
        *,
        redis_url: str | None = None,
        backend: Backend | None = None,
        storage: Storage | None = None,
        settings: Settings | None = None,
        progress: bool | None = None,
        metrics_url: str | None = None,
        planner: PlannerLike = None,
        _borrow: WorkerContext | None = None,
    ) -> None:
        if storage is not None and redis_url is not None:
            raise ConfigError("pass either redis_url= or storage=, not both")
        self.settings = settings or Settings.from_env()
        self.progress = progress
        self.backend: Backend = backend if backend is not None else LocalProcesses()
        in_process = isinstance(self.backend, InProcess) and redis_url is None
        # An empty SHOAL_REDIS_URL counts as unset (as in `SHOAL_REDIS_URL= shoal run ...`).
        env_url = None if in_process else os.environ.get("SHOAL_REDIS_URL") or None
        if redis_url is not None:
            check_redis_url(redis_url, "redis_url")
        elif env_url is not None:
            check_redis_url(env_url, "SHOAL_REDIS_URL")
        self._redis_url = redis_url or env_url
        self._storage = (
            storage if storage is not None else (MemoryStorage() if in_process else None)
        )
        self._server: EmbeddedServer | None = None
        self._metrics_url = metrics_url
        metrics_place(metrics_url)  # a bad URL fails here, not after a run
        #: The planner of runs given no plan or planner (None: every task flexible).
        self.planner: Planner | None = _planner(
            planner if planner is not None else self.settings.planner
        )
        self._recorder: Recorder | bool | None = False  # False: not opened yet
        #: Recordings of ended runs still being written (tasks on the session's loop).
        self._recording: set[asyncio.Future[Any]] = set()
        self._started = False
        self._closed = False
        self._runs: dict[str, Submitted] = {}
        #: Background watchdogs of submitted runs nobody waits for yet, by run id.
        self._watchers: dict[str, concurrent.futures.Future[None]] = {}
        self._lock = threading.Lock()  # the embedded server starts once, whichever thread asks
        self._start_lock: Any = None  # an asyncio.Lock, made on the loop
        #: A task's own session: the worker's store, platform and loop, none of them ours.
        self._borrowed = _borrow is not None
        if _borrow is not None:
            self._loop: SessionLoop = BorrowedLoop(_borrow.loop, _borrow.on_park)
            self._started = True  # the worker's backend has started long ago
            return
        # One loop for the session's life: storage and backend state is bound to it.
        sync = isinstance(self.backend, InProcess) and not self.backend.threads
        self._loop = CallerLoop() if sync else LoopThread()
        lifetime.exit_on_sigterm()  # SIGTERM cleans up as Ctrl-C does

    @classmethod
    def for_scheduler(cls, scheduler: str) -> Session:
        """An in-process session: ``"sync"`` (one task at a time) or ``"threads"``."""
        if scheduler not in ("sync", "threads"):
            raise ConfigError(
                f"unknown in-process scheduler {scheduler!r}; choose 'sync' or 'threads'"
            )
        return cls(backend=InProcess(threads=scheduler == "threads"), storage=MemoryStorage())

    @property
    def storage(self) -> Storage:
        if self._storage is None:
            with self._lock:
                if self._storage is None:
                    self._start_storage()
        assert self._storage is not None
        return self._storage

    @property
    def redis_url(self) -> str | None:
        """The server this session uses (None for an in-memory session)."""
        self.storage  # noqa: B018  (starts the embedded server if needed)
        return self._redis_url

    def _start_storage(self) -> None:
        from .storage.redis import RedisStorage

        if self._redis_url is None:
            self._server = EmbeddedServer()
            self._redis_url = self._server.start()
        self._storage = RedisStorage(
            self._redis_url, lease_ttl_s=self.settings.lease_ttl_s, name="shoal-client"
        )

    # -- running -------------------------------------------------------------------------------

    # Typed for one to three nodes (the value types of the tuple), then any number.
    @overload
    def compute(
        self,
        a: Node[A],
        /,
        *,
        plan: PlanLike = None,
        planner: PlannerLike = None,
        timeout: float | None = None,
    ) -> tuple[A]: ...
    @overload
    def compute(
        self,
        a: Node[A],
        b: Node[B],
        /,
        *,
        plan: PlanLike = None,
        planner: PlannerLike = None,
        timeout: float | None = None,
    ) -> tuple[A, B]: ...
    @overload
    def compute(
        self,
        a: Node[A],
        b: Node[B],
        c: Node[C],
        /,
        *,
        plan: PlanLike = None,
        planner: PlannerLike = None,
        timeout: float | None = None,
    ) -> tuple[A, B, C]: ...
    @overload
    def compute(
        self,
        *nodes: Node[Any],
        plan: PlanLike = None,
        planner: PlannerLike = None,
        timeout: float | None = None,
    ) -> tuple[Any, ...]: ...

    def compute(
        self,
        *nodes: Node[Any],
        plan: PlanLike = None,
        planner: PlannerLike = None,
        timeout: float | None = None,
    ) -> tuple[Any, ...]:
        """Runs the graph ending in ``nodes``; returns their values as a tuple."""
        check_timeout(timeout)
        frozen = self._freeze(nodes, plan, planner)
        if not nodes:
            return ()
        progress = RunProgress(len(frozen.graph), "shoal", self.progress)
        with progress:
            return tuple(self._run(self._run_to_end(frozen, timeout, progress)))

    async def _run_to_end(
        self, frozen: FrozenGraph, timeout: float | None, progress: RunProgress
    ) -> list[Any]:
        await self._ensure_started(frozen)
        sub = await submit(frozen, self.storage, self.backend, self.settings)
        try:
            values = await wait(sub, self.storage, self.backend, self.settings, timeout, progress)
        except TaskError:
            await self._record(sub)  # a failed run's completed tasks were measured all the same
            raise
        if not self._borrowed:  # a task's own run: the backend runs that very task
            await asyncio.wait_for(self.backend.drain(), timeout=30)
        await self._record(sub)
        return values

    # -- history and predictions ---------------------------------------------------------------

    @property
    def history(self) -> History | None:
        """Where this session's runs are recorded (None: ``metrics_url="off"``), once the
        recordings still in progress are done."""
        recorder = self._history_recorder()
        if recorder is None:
            return None
        if self._recording:
            self._run(self._recorded())
        return recorder.history

    def _history_recorder(self) -> Recorder | None:
        storage = self.storage  # started first: it takes the same lock
        with self._lock:  # opened once, whichever thread asks first
            if self._recorder is False:
                external = self._redis_url is not None and self._server is None
                history = open_history(self._metrics_url, storage, external)
                self._recorder = None if history is None else Recorder(history)
        found = self._recorder
        assert not isinstance(found, bool)
        return found

    async def _record(self, sub: Submitted) -> None:
        """Records ``sub``'s run in the history. In the background where the session has a
        loop of its own: the caller has its result without waiting for it (reading the
        stream and writing the history took 100 ms for tree-1024). Whatever reads the history
        here waits for the recordings first, and ``close()`` too."""
        if self._borrowed:
            return
        try:
            recorder = self._history_recorder()
        except Exception as e:  # history never fails a run: the result is the caller's
            self._recorder = None
            warnings.warn(
                f"shoal cannot open its run history ({type(e).__name__}: {e}); "
                "this session records none",
                RuntimeWarning,
                stacklevel=2,
            )
            return
        if recorder is None:
            return
        buffered = parse_upload(self.settings.metrics).buffered
        work = recorder.record(sub, self.storage, buffered)
        if isinstance(self._loop, CallerLoop):  # the loop runs only while a caller waits
            await work
            return
        task = asyncio.ensure_future(work)
        self._recording.add(task)
        task.add_done_callback(self._recording.discard)

    async def _recorded(self) -> None:
        """Waits for the recordings in progress, at most ``RECORD_WAIT_S`` (a history store
        that hangs must not hang the session). It only waits: a recording is never cancelled
        here, and one that ended leaves the set even before its callback ran."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RECORD_WAIT_S
        while True:
            for task in [t for t in self._recording if t.done()]:
                self._recording.discard(task)
            pending = [t for t in self._recording if t.get_loop() is loop]
            left = deadline - loop.time()
            if not pending or left <= 0:
                return
            await asyncio.wait(pending, timeout=left)

    def simulate(
        self,
        *nodes: Node[Any],
        plan: PlanLike = None,
        planner: PlannerLike = None,
        sla: str = "average",
        samples: int = 32,
        seed: int = 0,
    ) -> Plan:
        """The plan for ``nodes`` (``plan``; else ``planner``'s, default the session's) with
        its predicted run on this session's platform, from the history of earlier runs: per
        task ready, start and end, per worker lifetime, the makespan (and its Monte-Carlo
        P50/P95 over ``samples`` draws, seeded), critical path and GB-seconds. ``sla``:
        ``"average"`` or a percentile such as ``"p95"``, applied toward the slower side of
        every quantity. Hand the result to ``compute(plan=...)`` to run it; the run records
        its predictions."""
        parse_sla(sla)
        frozen, known = self._prepared(nodes, plan, planner)
        if not nodes:
            raise UsageError("simulate() needs at least one node")
        identity = identities(frozen)
        if known is None:  # no planner read it: read it here
            known = self._history_view(frozen, identity)
        predictions = predictions_from(known, frozen.graph, sla)
        return forecast(
            frozen.graph,
            identity,
            predictions,
            platform_of(self.backend),
            frozen.plan,
            sla=sla,
            samples=samples,
            seed=seed,
        )

    async def compute_async(
        self,
        *nodes: Node[Any],
        plan: PlanLike = None,
        planner: PlannerLike = None,
        timeout: float | None = None,
    ) -> tuple[Any, ...]:
        """``compute()`` for asyncio code: awaits the run without blocking the caller's loop.
        Cancelling the awaiting task cancels the run (as Ctrl-C does for ``compute()``)."""
        check_timeout(timeout)
        frozen = self._freeze(nodes, plan, planner)
        if not nodes:
            return ()
        progress = RunProgress(len(frozen.graph), "shoal", self.progress)
        caller = asyncio.get_running_loop()
        unwound = caller.create_future()  # the run's coroutine has ended, cleanup included

        def tell_unwound() -> None:
            if not unwound.done():
                unwound.set_result(None)

        async def go() -> list[Any]:
            try:
                return await self._run_to_end(frozen, timeout, progress)
            finally:
                with contextlib.suppress(RuntimeError):  # the caller's loop has closed
                    caller.call_soon_threadsafe(tell_unwound)

        with progress:
            future = self._loop.submit(go())
            if future is None:  # sync: the loop runs in a helper thread while this awaits
                return tuple(await asyncio.to_thread(self._run, go()))
            try:
                values: list[Any] = await asyncio.wrap_future(future)
            except asyncio.CancelledError:
                # The run is being cancelled on the session's loop: wait for that to finish,
                # so that when this raises, no task of the run starts any more.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(unwound), CANCEL_GRACE_S)
                raise
            return tuple(values)

    def persist(
        self, node: Node[T], *, ttl_s: float = DEFAULT_TTL_S, timeout: float | None = None
    ) -> Persisted[T]:
        """Computes ``node`` and keeps its value on the server for later graphs (see
        :mod:`shoal.persist`): pass the returned node to tasks; ``release()`` it when done, or
        it goes after ``ttl_s`` seconds (a day)."""
        ok = isinstance(ttl_s, int | float) and not isinstance(ttl_s, bool) and ttl_s > 0
        if not ok:
            raise UsageError(f"ttl_s must be a positive number of seconds, got {ttl_s!r}")
        return persist(self, node, float(ttl_s), timeout)

    def submit(
        self,
        *nodes: Node[Any],
        plan: Plan | Mapping[int, int] | None = None,
        planner: PlannerLike = None,
    ) -> Run:
        """Starts the graph ending in ``nodes`` and returns at once with a :class:`Run`:
        under ``plan``, else under ``planner``'s plan (default: the session's planner)."""
        frozen = self._freeze(nodes, plan, planner)
        if not nodes:
            raise ConfigError("submit() needs at least one node")

        async def go() -> Submitted:
            await self._ensure_started(frozen)
            return await submit(frozen, self.storage, self.backend, self.settings)

        sub = self._run(go())
        self._runs[sub.run_id] = sub
        watcher = self._loop.spawn(watch(sub, self.storage, self.backend, self.settings))
        if watcher is not None:
            self._watchers[sub.run_id] = watcher
        return Run(self, sub, nodes)

    def _stop_watching(self, run_id: str) -> None:
        watcher = self._watchers.pop(run_id, None)
        if watcher is not None:
            watcher.cancel()

    def _freeze(
        self,
        nodes: tuple[Node[Any], ...],
        plan: Plan | Mapping[int, int] | None,
        planner: PlannerLike = None,
    ) -> FrozenGraph:
        return self._prepared(nodes, plan, planner)[0]

    def _prepared(
        self,
        nodes: tuple[Node[Any], ...],
        plan: Plan | Mapping[int, int] | None,
        planner: PlannerLike = None,
    ) -> tuple[FrozenGraph, HistoryView | None]:
        """The frozen graph under ``plan`` or the planner's plan, and the history the planner
        read (None when no planner ran), so a caller needing it too reads it once."""
        if self._closed:
            raise ConfigError("this Session is closed")
        if plan is not None and planner is not None:
            raise UsageError("pass either plan= or planner=, not both")
        frozen = freeze(nodes, self.settings).with_plan(plan)
        if plan is not None or not nodes:
            return frozen, None
        chosen = self.planner if planner is None else _planner(planner)
        if chosen is None:
            return frozen, None
        identity = identities(frozen)
        known = self._history_view(frozen, identity)
        widths = dict(known.runs[0].widths) if known.runs else {}
        platform = platform_of(self.backend)
        problem = Problem(frozen.graph, identity, known, platform, widths=widths)
        return frozen.with_plan(planned(problem, chosen)), known

    def _history_view(self, frozen: FrozenGraph, identity: Identity) -> HistoryView:
        """What this session's history knows of ``frozen`` (two round trips; empty when runs
        are not recorded)."""
        history = self.history
        return self._run(load_view(frozen.graph, identity, history, frozen_workflow(frozen)))

    async def _ensure_started(self, frozen: FrozenGraph) -> None:
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            await self._start_once()
        if isinstance(self.backend, InProcess):
            self.backend.share_functions(frozen.live_functions)

    async def _start_once(self) -> None:
        if not self._started:
            ping = getattr(self.storage, "ping", None)
            if ping is not None:
                try:
                    await ping()
                except Exception as e:
                    url = redact_url(self._redis_url or "")
                    cause = e.__cause__ if isinstance(e, StorageError) and e.__cause__ else e
                    raise ConfigError(
                        f"cannot reach the Redis server at {url} (redis_url / SHOAL_REDIS_URL): "
                        f"{type(cause).__name__}: {cause}"
                    ) from None
            await self.backend.start(self.storage, self.settings)
            self._started = True

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._loop.run(coro)

    # -- lifetime ------------------------------------------------------------------------------

    def close(self) -> None:
        """Stops the workers and the embedded server; cleans up runs never waited for."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._recording:  # the history of the last runs, before the loop stops
                with contextlib.suppress(Exception):
                    self._run(self._recorded())
            # Calls other threads still wait on are cancelled first (they hear why).
            used = self._started or self._storage is not None
            self._loop.close(self._aclose() if used else None)
        finally:
            if self._server is not None:
                self._server.stop()

    async def _aclose(self) -> None:
        for run_id in list(self._watchers):
            self._stop_watching(run_id)
        for sub in list(self._runs.values()):
            with contextlib.suppress(Exception):
                await self.storage.cleanup(sub.run_id, sub.extra_keys)
        self._runs.clear()
        if self._borrowed:
            return  # the worker's store and platform go on
        if isinstance(self._recorder, Recorder):
            with contextlib.suppress(Exception):  # the workers must stop all the same
                await self._recorder.history.store.close()
        await self.backend.close()
        if self._storage is not None:
            await self._storage.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        where = type(self._storage).__name__ if self._storage is not None else "Redis (not started)"
        return f"<shoal.Session backend={self.backend!r} storage={where}>"


# -- the default session -----------------------------------------------------------------------

_defaults: dict[str, Any] = {"scheduler": "processes", "redis_url": None, "workers": None}
_default_session: Session | None = None
_default_lock = threading.Lock()


@contextlib.contextmanager
def defaults(
    scheduler: str | None = None, redis_url: str | None = None, workers: int | None = None
) -> Iterator[None]:
    """Within the block, ``compute()`` calls without a scheduler or session use these settings
    (what ``shoal run --scheduler/--redis/--workers`` does). The default session made for the
    block is closed at its end."""
    if scheduler is not None and scheduler not in SCHEDULERS:
        raise ConfigError(f"unknown scheduler {scheduler!r}; choose one of {', '.join(SCHEDULERS)}")
    old = dict(_defaults)
    _defaults.update(
        {
            "scheduler": scheduler or old["scheduler"],
            "redis_url": redis_url or old["redis_url"],
            "workers": workers or old["workers"],
        }
    )
    _close_default_session()
    try:
        yield
    finally:
        _close_default_session()
        _defaults.clear()
        _defaults.update(old)


def default_session() -> Session:
    """The shared distributed session (created on first use, closed at interpreter exit)."""
    global _default_session
    with _default_lock:
        if _default_session is None or _default_session._closed:
            _default_session = Session(
                redis_url=_defaults["redis_url"],
                backend=LocalProcesses(max_workers=_defaults["workers"]),
            )
        return _default_session


def _close_default_session() -> None:
    global _default_session
    with _default_lock:
        s, _default_session = _default_session, None
    if s is not None:
        s.close()


atexit.register(_close_default_session)


def _planner(planner: Planner | str) -> Planner | None:
    if isinstance(planner, str):
        return by_name(planner)
    if not callable(getattr(planner, "plan", None)) or not isinstance(
        getattr(planner, "name", None), str
    ):
        raise UsageError(
            f"planner must be a planner object (with .name and .plan(problem)) or a name "
            f"({', '.join([*NAMES, 'none'])}), got {type(planner).__name__}"
        )
    return planner


def _compute_in_worker(
    worker: WorkerContext,
    nodes: tuple[Node[Any], ...],
    plan: PlanLike,
    planner: PlannerLike,
    timeout: float | None,
) -> tuple[Any, ...]:
    """A task's own ``compute()``: on its worker's store and platform (see
    :mod:`shoal.runtime.context`); in ``sync`` mode, a sync run of its own."""
    if worker.inline:
        with Session.for_scheduler("sync") as s:
            return s.compute(*nodes, plan=plan, planner=planner, timeout=timeout)
    borrowed = Session(
        storage=worker.storage,
        backend=worker.backend,
        settings=worker.settings,
        progress=False,
        _borrow=worker,
    )
    with borrowed:
        return borrowed.compute(*nodes, plan=plan, planner=planner, timeout=timeout)


@overload
def compute(
    a: Node[A],
    /,
    *,
    scheduler: str | None = None,
    session: Session | None = None,
    plan: PlanLike = None,
    planner: PlannerLike = None,
    timeout: float | None = None,
) -> tuple[A]: ...
@overload
def compute(
    a: Node[A],
    b: Node[B],
    /,
    *,
    scheduler: str | None = None,
    session: Session | None = None,
    plan: PlanLike = None,
    planner: PlannerLike = None,
    timeout: float | None = None,
) -> tuple[A, B]: ...
@overload
def compute(
    a: Node[A],
    b: Node[B],
    c: Node[C],
    /,
    *,
    scheduler: str | None = None,
    session: Session | None = None,
    plan: PlanLike = None,
    planner: PlannerLike = None,
    timeout: float | None = None,
) -> tuple[A, B, C]: ...
@overload
def compute(
    *nodes: Node[Any],
    scheduler: str | None = None,
    session: Session | None = None,
    plan: PlanLike = None,
    planner: PlannerLike = None,
    timeout: float | None = None,
) -> tuple[Any, ...]: ...


def compute(
    *nodes: Node[Any],
    scheduler: str | None = None,
    session: Session | None = None,
    plan: PlanLike = None,
    planner: PlannerLike = None,
    timeout: float | None = None,
) -> tuple[Any, ...]:
    """Computes several nodes over one shared graph; returns a tuple of their values.

    ``scheduler``: ``"processes"`` (the default session: Redis + worker processes), ``"sync"``
    (in-process, one task at a time) or ``"threads"``. ``session``: an explicit
    :class:`Session`. ``plan``: a :class:`~shoal.planning.Plan`, or ``{task_id: worker_id}``
    to pin tasks to workers. ``planner``: a planner (:mod:`shoal.planners`) or its name, for
    this run instead of the session's (``SHOAL_PLANNER``, default ``"default"``).
    ``timeout``: seconds before
    :class:`~shoal.RunTimeout`.
    """
    if session is not None and scheduler is not None:
        raise ConfigError("pass either scheduler= or session=, not both")
    if session is not None:
        return session.compute(*nodes, plan=plan, planner=planner, timeout=timeout)
    worker = current() if scheduler is None else None
    if worker is not None:  # inside a task: where the task's own run goes
        return _compute_in_worker(worker, nodes, plan, planner, timeout)
    scheduler = scheduler or _defaults["scheduler"]
    if scheduler not in SCHEDULERS:
        raise ConfigError(f"unknown scheduler {scheduler!r}; choose one of {', '.join(SCHEDULERS)}")
    if scheduler == "processes":
        return default_session().compute(*nodes, plan=plan, planner=planner, timeout=timeout)
    with Session.for_scheduler(scheduler) as s:
        return s.compute(*nodes, plan=plan, planner=planner, timeout=timeout)


def simulate(
    *nodes: Node[Any],
    plan: PlanLike = None,
    planner: PlannerLike = None,
    sla: str = "average",
    samples: int = 32,
    seed: int = 0,
    session: Session | None = None,
) -> Plan:
    """The predicted run of the graph ending in ``nodes`` under ``plan`` (else ``planner``'s
    plan, default the session's planner), from the history of earlier runs: see
    :meth:`Session.simulate`. Uses ``session``, else the default session (the one
    ``compute()`` uses)."""
    s = session if session is not None else default_session()
    return s.simulate(*nodes, plan=plan, planner=planner, sla=sla, samples=samples, seed=seed)
