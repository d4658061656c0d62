"""What a worker reports on the run's stream: its name, and the records of its events.

The worker shell measures (fetch and encode times, bytes, how it started, where its time went);
this module turns the measurements into :mod:`shoal.events` records, so the shell never builds
event fields by hand. A worker's name says both its process and, on a pinned worker, its id:
``<host>:<pid>:<n>/w<id>``.

State (:class:`Tally`, one per invocation): ``tasks`` attempts run, ``busy_s`` seconds in task
functions, ``parked_s`` seconds blocked on the inbox; all only grow, and a pinned worker sends
them once, in WORKER_EXITED (with the release of its lease: no extra round trip). How long
storing an output took is on its TASK_COMPLETED (``stored_at - end``, stamped by the store).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .. import _core, events
from ..identity import FunctionId
from .elements import MapView

Graph = _core.Graph | MapView


@dataclass(frozen=True, slots=True)
class StartInfo:
    """How the invocation's worker started (told by its host; LocalProcesses measures it)."""

    #: ``cold``: a new process; ``warm``: one that ran an invocation before.
    kind: str = "warm"
    #: Invocation handed to its process -> worker ready, seconds (the start itself).
    latency_s: float | None = None
    #: Invocation queued -> handed to a process: the wait for a free slot, seconds.
    queued_s: float | None = None
    #: Process spawn -> ready (cold starts), seconds.
    process_start_s: float | None = None
    memory_mb: int | None = None
    cpu: float | None = None


@dataclass(frozen=True, slots=True)
class SubdagInfo:
    """The subDAG the invocation carried (inline) or referenced (stored)."""

    bytes: int
    decode_s: float


def worker_label(base: str, worker: int | None) -> str:
    return base if worker is None else f"{base}/w{worker}"


def function_identity(
    graph: Graph, task: int, identity_of: Callable[[bytes], FunctionId | None] | None = None
) -> tuple[str, str]:
    """(qualified name, code hash in hex; see :mod:`shoal.identity`): two closures named ``f``
    differ by hash. ``identity_of`` gives a loaded function's identity by its blob's hash;
    without it (or before the function is loaded) the graph's name and the blob's hash stand
    in."""
    blob = graph.fn_hash(task)
    found = identity_of(blob) if identity_of is not None else None
    if found is None:
        return graph.fn_name(task), blob.hex()
    return found.name, found.code


@dataclass
class Tally:
    tasks: int = 0
    busy_s: float = 0.0
    parked_s: float = 0.0


@dataclass
class Reporter:
    """Builds one worker's events; the first TASK_STARTED also says how the worker started."""

    worker: str
    worker_id: int | None
    start: StartInfo | None
    subdag: SubdagInfo | None
    tally: Tally = field(default_factory=Tally)
    #: The task whose completion invoked this worker, and when (server clock); reported once.
    invoked_by: int | None = None
    invoked_at: float | None = None
    #: A loaded function's identity, by its blob's hash (see :func:`function_identity`).
    identity_of: Callable[[bytes], FunctionId | None] | None = None
    #: Function identity per task, asked of the graph once (the binding allocates strings).
    _identity: dict[int, tuple[str, str]] = field(default_factory=dict)

    def identity(self, graph: Graph, task: int) -> tuple[str, str]:
        found = self._identity.get(task)
        if found is None:
            found = self._identity[task] = function_identity(graph, task, self.identity_of)
        return found

    def started(self, graph: Graph, task: int, attempt: int, now: float) -> events.Fields:
        start, sub = self.start, self.subdag
        self.start = self.subdag = None  # once per invocation
        by, at = self.invoked_by, self.invoked_at
        self.invoked_by = self.invoked_at = None
        record = events.TaskStarted(
            task=task,
            name=graph.name(task),
            worker=self.worker,
            worker_id=self.worker_id,
            attempt=attempt,
            time=now,
            start_kind=None if start is None else start.kind,
            start_latency_s=None if start is None else start.latency_s,
            queued_s=None if start is None else start.queued_s,
            process_start_s=None if start is None else start.process_start_s,
            memory_mb=None if start is None else start.memory_mb,
            cpu=None if start is None else start.cpu,
            subdag_bytes=None if sub is None else sub.bytes,
            subdag_decode_s=None if sub is None else sub.decode_s,
            invoked_by=by,
            invoke_s=None if at is None else round(max(0.0, now - at), 6),
        )
        return events.encode(record)

    def completed(
        self,
        graph: Graph,
        task: int,
        *,
        attempt: int,
        start: float,
        end: float,
        fetched: FetchStats,
        output_bytes: int,
        encode_s: float,
        acted: tuple[str, ...],
    ) -> events.Fields:
        fn, fn_hash = self.identity(graph, task)
        self.tally.tasks += 1
        self.tally.busy_s += end - start
        record = events.TaskCompleted(
            task=task,
            name=graph.name(task),
            fn=fn,
            fn_hash=fn_hash,
            worker=self.worker,
            worker_id=self.worker_id,
            attempt=attempt,
            start=start,
            end=end,
            input_bytes=fetched.bytes,
            inputs_fetched=fetched.count,
            inputs_local=fetched.local,
            fetch_s=round(fetched.seconds, 6),
            output_bytes=output_bytes,
            encode_s=round(encode_s, 6),
            optimizations=acted,
        )
        return events.encode(record)

    def expanded(self, graph: Graph, task: int, elements: int, now: float) -> events.Fields:
        # The store's script adds `task` and `width` (it knows the expansion is the first).
        record = events.MapExpanded(
            task=task,
            width=0,
            name=graph.name(task),
            elements=elements,
            worker=self.worker,
            time=now,
        )
        fields = events.encode(record)
        fields.pop("width", None)
        return fields

    def retry(
        self, graph: Graph, task: int, attempt: int, exc_type: str, message: str, delay_s: float
    ) -> events.Fields:
        self.tally.tasks += 1
        record = events.TaskRetry(
            task=task,
            name=graph.name(task),
            attempt=attempt,
            exc_type=exc_type,
            message=message,
            worker=self.worker,
            worker_id=self.worker_id,
            delay_s=round(delay_s, 6),
        )
        return events.encode(record)

    def exited(self, reason: str, now: float) -> events.Fields:
        t = self.tally
        record = events.WorkerExited(
            worker=self.worker,
            worker_id=self.worker_id,
            reason=reason,
            tasks=t.tasks,
            busy_s=round(t.busy_s, 6),
            parked_s=round(t.parked_s, 6),
            time=now,
        )
        return events.encode(record)


@dataclass(frozen=True, slots=True)
class FetchStats:
    """The inputs of one attempt: fetched bytes and count, inputs already here, fetch time."""

    bytes: int = 0
    count: int = 0
    local: int = 0
    seconds: float = 0.0
