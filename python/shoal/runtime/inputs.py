"""A task's inputs: what a warm worker keeps, and fetching what it lacks in one round trip.

Before a task runs, the worker needs its upstream values (held here, sent inline, or stored),
its function (cached by content hash for the life of the process: a warm worker skips both the
fetch and the unpickling) and its large constants (cached per run). :func:`start_ask` says
what to ask the store for, all at once, together with the TASK_STARTED event and the task's
lease (see ``Storage.fetch``); the ask goes alone (:func:`fetch_inputs`) or rides with the
completion of the worker's previous task (``Storage.complete(..., then=...)``), and
:func:`received` decodes what came back.

State (:class:`WorkerCaches`, one per process, shared by its invocations): ``functions`` maps a
function's 16-byte content hash to the unpickled function (entries never change: the hash is of
the blob); ``constants`` maps (run id, content hash) to a decoded constant; ``clock_offset`` is
the store's clock minus this host's; ``tainted`` turns True when a timed-out task's thread may
still run, and then never back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import _core
from ..errors import PayloadError, ShoalError
from ..identity import FunctionId, function_id
from ..serialize import loads_function, loads_leaf, loads_value, value_place
from ..signing import const_place, unseal
from ..storage.base import Event, Fetched, Storage, TaskStart, start_alone
from .elements import MapView
from .inline import InlinePolicy, LeaseGuard
from .reports import FetchStats

Graph = _core.Graph | MapView


@dataclass
class WorkerCaches:
    """State a warm worker keeps between invocations."""

    functions: dict[bytes, Callable[..., Any]] = field(default_factory=dict)
    constants: dict[tuple[str, bytes], Any] = field(default_factory=dict)
    #: Seconds to add to this host's clock to get the store's (events use one clock).
    clock_offset: float = 0.0
    #: A timed-out task's thread may still run: the process should exit after this invocation.
    tainted: bool = False
    #: Which functions run inline, without a thread hop (see :mod:`.inline`).
    inline: InlinePolicy = field(default_factory=InlinePolicy)
    #: Renews leases while an inline call blocks the loop; started on the first inline call.
    guard: LeaseGuard | None = None
    #: A loaded function's identity (:mod:`shoal.identity`) by its blob hash.
    identities: dict[bytes, FunctionId] = field(default_factory=dict)

    def identity_of(self, blob_hash: bytes) -> FunctionId | None:
        """The identity of the function stored under ``blob_hash``, once it is loaded here:
        the client names it the same way, so history recorded here is found there."""
        found = self.identities.get(blob_hash)
        if found is None:
            fn = self.functions.get(blob_hash)
            if fn is None:
                return None
            found = self.identities[blob_hash] = function_id(fn)
        return found

    def now(self) -> float:
        return time.time() + self.clock_offset


@dataclass
class TaskInputs:
    """Everything a task needs to run, in hand."""

    #: Upstream values by task id (local and fetched).
    values: dict[int, Any]
    #: The ones that came from the store (the machine keeps them for later consumers).
    fetched: dict[int, Any]
    #: The task's function (None when expanding a map root, which runs none).
    function: Callable[..., Any] | None
    #: Decoded constants by content hash.
    constants: dict[bytes, Any]
    stats: FetchStats
    #: How each worker that ran this task before died, oldest first (see ``Storage.fetch``).
    crashes: tuple[str, ...] = ()


@dataclass
class StartAsk:
    """What a task's start asks the store for (:func:`start_ask`), and how to read the
    answer (:func:`received`): alone (:func:`fetch_inputs`) or riding with the previous
    task's completion."""

    start: TaskStart
    local: dict[int, Any]
    #: The function's content hash, and whether it is fetched (not cached, not expanding).
    fn_hash: bytes
    #: The constants the task reads, by content hash (those not cached are fetched).
    wanted: list[bytes]


def start_ask(
    run_id: str,
    graph: Graph,
    task: int,
    local: dict[int, Any],
    missing: Sequence[int],
    caches: WorkerCaches,
    *,
    event: Event,
    lease: Sequence[str],
    expanding: bool,
    rerun: bool = False,
    if_ready: bool = False,
) -> StartAsk:
    """The start of ``task``: its ``missing`` inputs, the function and constants it lacks,
    ``event`` appended and ``lease`` taken."""
    fn_hash = graph.fn_hash(task)
    need_function = not expanding and fn_hash not in caches.functions
    wanted = [] if expanding else graph.const_hashes(task)
    lists = {
        d: graph.element_base(d) for d in missing if isinstance(graph, MapView) and graph.is_map(d)
    }
    start = TaskStart(
        task=task,
        outputs=list(missing),
        functions=[fn_hash] if need_function else [],
        constants=[h for h in wanted if (run_id, h) not in caches.constants],
        event=event,
        lease=lease,
        lists=lists,
        rerun=rerun,
        if_ready=if_ready,
    )
    return StartAsk(start, local, fn_hash, wanted)


async def fetch_inputs(
    storage: Storage, run_id: str, graph: Graph, ask: StartAsk, caches: WorkerCaches
) -> TaskInputs | Fetched:
    """Starts a task in one round trip of its own (see :func:`received`)."""
    began = time.perf_counter()
    got = await start_alone(storage, run_id, ask.start)
    return received(run_id, graph, ask, got, caches, began)


def received(
    run_id: str,
    graph: Graph,
    ask: StartAsk,
    got: Fetched,
    caches: WorkerCaches,
    began: float,
) -> TaskInputs | Fetched:
    """Decodes a start's answer. A missing stored value is a ShoalError. A refused start
    (the run has ended, the task is done: see ``Storage.fetch``) returns the store's answer,
    and the task must not run. ``began``: when the ask went out (for the fetch time)."""
    if got.ended or got.done:
        return got
    s, task = ask.start, ask.start.task

    def lost(what: str) -> ShoalError:  # the task is named only on this rare path
        return ShoalError(f"{what} not in storage, needed by task '{graph.name(task)}'")

    fetched: dict[int, Any] = {}
    nbytes = 0
    for d in s.outputs:
        if d in s.lists:
            blobs = got.lists.get(d)
            if blobs is None:
                raise lost(f"the outputs of map task {d} are")
            nbytes += sum(len(b) for b in blobs)
            base = s.lists[d]
            fetched[d] = [
                loads_value(b, value_place(run_id, base + i)) for i, b in enumerate(blobs)
            ]
            continue
        blob = got.outputs.get(d)
        if blob is None:
            raise lost(f"the output of task {d} is")
        nbytes += len(blob)
        fetched[d] = loads_value(blob, value_place(run_id, d))
    func = caches.functions.get(ask.fn_hash)
    if s.functions:
        blob = got.functions.get(ask.fn_hash)
        if blob is None:
            raise lost(f"its function ({ask.fn_hash.hex()}) is")
        func = loads_function(blob, ask.fn_hash)
        caches.functions[ask.fn_hash] = func
    for h in s.constants:
        blob = got.constants.get(h)
        if blob is None:
            raise lost(f"its constant {h.hex()} is")
        caches.constants[(run_id, h)] = _core.decode_constant(
            _constant(run_id, h, blob), loads_leaf
        )
    stats = FetchStats(
        bytes=nbytes,
        count=len(s.outputs),
        local=len(ask.local),
        seconds=time.perf_counter() - began,
    )
    return TaskInputs(
        values={**ask.local, **fetched},
        fetched=fetched,
        function=func,
        constants={h: caches.constants[(run_id, h)] for h in ask.wanted},
        stats=stats,
        crashes=got.crashes,
    )


def _constant(run_id: str, const_hash: bytes, blob: bytes) -> bytes:
    """A constant's bytes: signed for this run and hash, and with that content hash."""
    data = unseal(blob, "a constant", const_place(run_id, const_hash))
    if _core.hash16(data) != const_hash:
        raise PayloadError(f"the constant stored under {const_hash.hex()} has another content")
    return data
