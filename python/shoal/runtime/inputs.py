"""A task's inputs: what a warm worker keeps, and fetching what it lacks in one round trip.

Before a task runs, the worker needs its upstream values (held here, sent inline, or stored),
its function (cached by content hash for the life of the process: a warm worker skips both the
fetch and the unpickling) and its large constants (cached per run). :func:`fetch_inputs` asks
the store for everything missing at once, together with the TASK_STARTED event and the task's
lease (see ``Storage.fetch``), and decodes what came back.

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
from ..serialize import loads_function, loads_leaf, loads_value, value_place
from ..signing import const_place, unseal
from ..storage.base import Event, Fetched, Storage
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


async def fetch_inputs(
    storage: Storage,
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
) -> TaskInputs | Fetched:
    """Fetches ``missing`` inputs, the function and constants ``task`` lacks, in one round trip
    that also appends ``event`` and takes ``lease``. A missing stored value is a ShoalError.
    A refused start (the run has ended, the task is done: see ``Storage.fetch``) returns the
    store's answer, and the task must not run."""
    fn_hash = graph.fn_hash(task)
    func = caches.functions.get(fn_hash)
    need_function = func is None and not expanding
    wanted = [] if expanding else graph.const_hashes(task)
    const_hashes = [h for h in wanted if (run_id, h) not in caches.constants]
    lists = {
        d: graph.element_base(d) for d in missing if isinstance(graph, MapView) and graph.is_map(d)
    }
    began = time.perf_counter()
    got = await storage.fetch(
        run_id,
        list(missing),
        [fn_hash] if need_function else [],
        const_hashes,
        event=event,
        lease=lease,
        lists=lists,
        starting=task,
        rerun=rerun,
    )
    if got.ended or got.done:
        return got

    def lost(what: str) -> ShoalError:  # the task is named only on this rare path
        return ShoalError(f"{what} not in storage, needed by task '{graph.name(task)}'")

    fetched: dict[int, Any] = {}
    nbytes = 0
    for d in missing:
        if d in lists:
            blobs = got.lists.get(d)
            if blobs is None:
                raise lost(f"the outputs of map task {d} are")
            nbytes += sum(len(b) for b in blobs)
            base = lists[d]
            fetched[d] = [
                loads_value(b, value_place(run_id, base + i)) for i, b in enumerate(blobs)
            ]
            continue
        blob = got.outputs.get(d)
        if blob is None:
            raise lost(f"the output of task {d} is")
        nbytes += len(blob)
        fetched[d] = loads_value(blob, value_place(run_id, d))
    if need_function:
        blob = got.functions.get(fn_hash)
        if blob is None:
            raise lost(f"its function ({fn_hash.hex()}) is")
        func = loads_function(blob, fn_hash)
        caches.functions[fn_hash] = func
    for h in const_hashes:
        blob = got.constants.get(h)
        if blob is None:
            raise lost(f"its constant {h.hex()} is")
        caches.constants[(run_id, h)] = _core.decode_constant(
            _constant(run_id, h, blob), loads_leaf
        )
    stats = FetchStats(
        bytes=nbytes, count=len(missing), local=len(local), seconds=time.perf_counter() - began
    )
    return TaskInputs(
        values={**local, **fetched},
        fetched=fetched,
        function=func,
        constants={h: caches.constants[(run_id, h)] for h in wanted},
        stats=stats,
        crashes=got.crashes,
    )


def _constant(run_id: str, const_hash: bytes, blob: bytes) -> bytes:
    """A constant's bytes: signed for this run and hash, and with that content hash."""
    data = unseal(blob, "a constant", const_place(run_id, const_hash))
    if _core.hash16(data) != const_hash:
        raise PayloadError(f"the constant stored under {const_hash.hex()} has another content")
    return data
