"""The storage protocol: everything workers and clients need from Redis, as one interface.

Two implementations pass one contract suite (``tests/storage/test_contract.py``): the in-memory
store (for ``scheduler="sync"`` and state-machine tests) and Redis. The semantics that matter:

- :meth:`Storage.complete` is atomic and idempotent. The first completion of a task marks it
  done, counts down each downstream task, routes the ones that became ready (pinned to another
  worker: pushed onto its inbox, and reported for invocation the first time that worker is
  needed; otherwise returned to the caller), stores the output if it is needed elsewhere (first
  writer wins), appends TASK_COMPLETED, and when the last requested output is done appends
  RUN_COMPLETED. A second completion of the same task changes nothing.
- Events are an ordered, durable stream read by position; nothing relies on pub/sub.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..events import TaskFailed, encode

#: An event as stored: flat string fields, as in a Redis stream entry.
Event = dict[str, str]


@dataclass(frozen=True, slots=True)
class Downstream:
    task: int
    ndeps: int
    worker: int | None


@dataclass(frozen=True, slots=True)
class Gather:
    """A map completing when its last element does (see :mod:`shoal.runtime.elements`)."""

    map: int
    #: The map's static consumers, counted down once, when its last element completes.
    downstream: Sequence[Downstream]
    is_output: bool
    #: Fields of the map's TASK_COMPLETED event (the store adds ``width``).
    event: Event = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Expansion:
    """A map chain's root expanded: the store learns its width and its source's items."""

    root: int
    width: int
    #: Encoded items of the source; item i is stored under ``item_base + i``.
    items: Sequence[bytes]
    item_base: int
    #: Element i of the root (id ``element_base + i``) is ready once the expansion is stored.
    element_base: int
    #: Every map of the chain: the width is recorded for each, and with width 0 each completes
    #: at once (its consumers receive empty lists).
    maps: Sequence[Gather]
    #: The expanding worker's id (None = flexible): ready tasks pinned to it come back here.
    worker: int | None
    #: Fields of the MAP_EXPANDED event.
    event: Event = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Completion:
    task: int
    #: The encoded output, when it may be needed elsewhere; None when it stays on this worker.
    output: bytes | None
    #: Store the output even if every downstream task became ready (a requested output, or
    #: consumers that will fetch it).
    must_store: bool
    downstream: Sequence[Downstream]
    is_output: bool
    #: The completing worker's id (None = flexible): ready tasks pinned to it come back here.
    worker: int | None
    event: Event = field(default_factory=dict)
    #: For an element of a map: the map, counted down (and completed by its last element).
    gathers: Sequence[Gather] = ()


@dataclass(frozen=True, slots=True)
class TaskStart:
    """The start of a worker's next task, riding with its completion of the previous one
    (``Storage.complete(..., then=...)``): what :meth:`Storage.fetch` would be asked for
    ``task``, in the same round trip."""

    task: int
    outputs: Sequence[int] = ()
    functions: Sequence[bytes] = ()
    constants: Sequence[bytes] = ()
    event: Event = field(default_factory=dict)
    lease: Sequence[str] = ()
    lists: Mapping[int, int] = field(default_factory=dict)
    rerun: bool = False
    #: Start it only if this completion makes it ready (False: it is ready on this worker).
    if_ready: bool = False


async def start_alone(storage: Storage, run_id: str, start: TaskStart) -> Fetched:
    """``start`` in a round trip of its own: :meth:`Storage.fetch` asked for its task."""
    return await storage.fetch(
        run_id,
        start.outputs,
        start.functions,
        start.constants,
        event=start.event,
        lease=start.lease,
        lists=start.lists,
        starting=start.task,
        rerun=start.rerun,
    )


@dataclass(frozen=True, slots=True)
class CompletionResult:
    first: bool
    ready: list[int]
    #: Pinned workers that received their first task and must be invoked.
    invoke_workers: list[int]
    run_finished: bool
    #: The answer to the ``then`` start, as :meth:`Storage.fetch` gives it; None when none was
    #: asked, the completion was a repeat, or ``if_ready`` and the task did not become ready.
    started: Fetched | None = None


@dataclass(frozen=True, slots=True)
class Fetched:
    outputs: dict[int, bytes]
    functions: dict[bytes, bytes]
    constants: dict[bytes, bytes]
    #: Per map asked for: its elements' encoded outputs in order (absent: not expanded yet).
    lists: dict[int, list[bytes]] = field(default_factory=dict)
    #: How each worker that ran the task asked about (``starting``) died, oldest first.
    crashes: tuple[str, ...] = ()
    #: A task start refused: the run has ended (completed, failed) or is gone.
    ended: bool = False
    #: A task start refused: the task is done already (a duplicate invocation).
    done: bool = False


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    task: int
    name: str
    attempt: int
    exc_type: str
    message: str
    traceback: str
    worker: str
    time: float
    #: The exception, encoded and sealed for the run and task (``failures.raised``).
    exception: bytes = b""
    #: The remote frames as JSON (file, function, line, module, end line, columns each).
    frames: str = ""

    def as_event(self) -> Event:
        failed = TaskFailed(
            task=self.task,
            name=self.name,
            attempt=self.attempt,
            exc_type=self.exc_type,
            message=self.message,
            traceback=self.traceback,
            worker=self.worker,
            time=self.time,
            exception=base64.b64encode(self.exception).decode("ascii"),
            frames=self.frames,
        )
        return encode(failed)

    def to_blob(self) -> bytes:
        import msgpack

        return msgpack.packb(self.as_event(), use_bin_type=True)  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class RunSpec:
    """What a client stores before invoking the first workers (one pipeline in Redis)."""

    run_id: str
    functions: Mapping[bytes, bytes]
    constants: Mapping[bytes, bytes]
    #: Stored subDAGs by name (pinned workers' subDAGs, oversized flexible ones).
    subdags: Mapping[str, bytes]
    #: Distinct requested output task ids.
    outputs: Sequence[int]
    #: Pinned workers the client invokes itself.
    started_workers: Sequence[int]
    #: Safety-net lifetime of every run key.
    ttl_s: int
    #: Lifetime of the event stream after the run.
    events_ttl_s: int
    #: Lease members of the first invocations (``t<root>``, ``w<worker>``), leased as hand-offs
    #: (see :func:`.keys.leases`) so that a lost first invocation is recovered too.
    handed: Sequence[str] = ()


class Storage(Protocol):
    #: How long a lease lives without renewal; workers renew at a third of it.
    lease_ttl_s: float

    async def submit(self, spec: RunSpec, event: Event) -> None:
        """Stores a run's function table, constants, subDAGs and meta; appends ``event``."""

    async def fetch(
        self,
        run_id: str,
        outputs: Sequence[int],
        functions: Sequence[bytes] = (),
        constants: Sequence[bytes] = (),
        event: Event | None = None,
        lease: Sequence[str] = (),
        lists: Mapping[int, int] | None = None,
        starting: int | None = None,
        rerun: bool = False,
    ) -> Fetched:
        """Upstream outputs, function blobs and constants, in one round trip. Missing ones are
        absent from the result. ``event`` (TASK_STARTED) is appended and the ``lease`` members
        (see :func:`.keys.leases`) are taken in the same round trip, replacing what covered
        that work before (``r<task>``: the task's queued and hand-off leases; any other member
        its hand-off). ``lists`` maps a map task to the id of its element 0: the outputs of all
        its elements come back in ``lists``. ``starting``: the task that starts (its crash
        record comes back in :attr:`Fetched.crashes`); a task start of a run that has ended
        or is gone changes nothing and returns ``Fetched(ended=True)``: no task of an ended run
        starts, wherever its invocations still wait. Nor does the start of a task done already
        (``Fetched(done=True)``: a duplicate invocation costs one round trip, not a second
        run), unless ``rerun`` (a recovery recomputing an output lost with its worker)."""

    async def put_subdag(self, run_id: str, name: str, blob: bytes) -> None:
        """Stores a subDAG too large to travel inside an invocation."""

    async def get_subdag(self, run_id: str, name: str) -> bytes | None: ...

    async def complete(
        self, run_id: str, completion: Completion, then: TaskStart | None = None
    ) -> CompletionResult:
        """Records ``completion`` (see the module docstring); then, in the same round trip and
        only after a first completion, starts ``then`` as :meth:`fetch` would (if
        ``then.if_ready``, only when this completion made it ready): the answer is
        :attr:`CompletionResult.started`."""

    async def expand(self, run_id: str, expansion: Expansion) -> CompletionResult:
        """Records a map chain's expansion, once (a repeat changes nothing): the width of each
        of its maps and their gather counters, the source's items, leases on the root's
        elements (returned as ready) and MAP_EXPANDED; with width 0, completes every map of the
        chain as :meth:`complete` would."""

    async def fail(self, run_id: str, record: ErrorRecord) -> bool:
        """Records a terminal failure and appends TASK_FAILED and RUN_FAILED in one transaction.
        Returns False if the run had already finished or failed."""

    async def cancel(self, run_id: str, reason: str) -> bool:
        """Stops a run that has not ended: it reads ``cancelled`` and RUN_CANCELLED (with
        ``reason``) is appended; no task of it starts from then on. Returns False if the run
        had ended already or is gone."""

    async def append_event(self, run_id: str, event: Event) -> str: ...

    async def append_events(self, run_id: str, batch: Sequence[Event]) -> None:
        """Appends ``batch`` in order, in one round trip (none to a run whose stream is gone)."""

    async def renew(self, run_id: str, members: Sequence[str]) -> None:
        """Extends leases this worker still holds (a lease dropped meanwhile stays dropped)."""

    async def release(
        self, run_id: str, members: Sequence[str], event: Event | None = None
    ) -> None:
        """Drops leases (a task handed to a durable queue, a pinned worker that is done) and
        appends ``event`` if given, in the same round trip."""

    async def hand_off(self, run_id: str, members: Sequence[str]) -> None:
        """Work given to the platform: each member's lease becomes a hand-off lease (``h`` +
        member) of a full lifetime, replaced by the receiving worker's first START."""

    async def crashed(
        self, run_id: str, task: int, how: str, worker: str = "", requeue: bool = False
    ) -> int:
        """A platform saw the worker running ``task`` die ``how``: counted (TASK_CRASHED) while
        the task's running lease exists, which becomes a hand-off (``requeue``: the platform
        runs the invocation again) or an expired queued lease (the watchdog recovers it).
        Returns the crashes so far, 0 if not counted, -1 if the run has ended."""

    async def expired(self, run_id: str) -> list[str] | None:
        """Lease members past their expiry, each extended by a grace period so one expiry is
        reported once; None when the run's state is gone (finished, or the server lost it). An
        expired running lease ``r<task>`` counts a crash of the task (as :meth:`crashed` would,
        how: lost) and becomes the hand-off ``ht<task>`` of the recovery to come."""

    async def read_events(
        self, run_id: str, after: str = "0", block_s: float | None = None, count: int = 1000
    ) -> list[tuple[str, Event]]:
        """Events after stream id ``after``; waits up to ``block_s`` for one if there are none."""

    async def pop_inbox(self, run_id: str, worker: int, block_s: float) -> list[int]:
        """Task ids from ``worker``'s inbox; waits up to ``block_s`` for the first."""

    async def events_range(self, run_id: str, count: int | None = None) -> list[tuple[str, Event]]:
        """The run's events from the start, without blocking (``shoal show``)."""

    async def recent_runs(self, limit: int = 20) -> list[tuple[str, float]]:
        """(run id, submission time) of recent runs, newest first."""

    async def server_time(self) -> float:
        """The store's clock, so that workers on different hosts stamp events on one clock."""

    async def run_ended(self, run_id: str) -> bool:
        """Whether the run completed, failed, or is gone (cleaned up, expired, server lost)."""

    async def task_states(self, run_id: str, tasks: Sequence[int]) -> dict[int, bool | None]:
        """Per task: True = done and output stored, False = done (output kept by its worker),
        None = not done."""

    async def results(
        self, run_id: str, tasks: Sequence[int], lists: Mapping[int, int] | None = None
    ) -> Fetched:
        """The stored outputs of ``tasks`` and the element outputs of the maps in ``lists``."""

    async def errors(self, run_id: str) -> dict[int, bytes]: ...

    async def cleanup(self, run_id: str, extra_keys: Sequence[str]) -> None:
        """Deletes every key of the run except its event stream, which gets its TTL."""

    def renew_blocking(self, run_id: str, members: Sequence[str]) -> None:
        """``renew`` from another thread while the worker's loop is blocked in a task that runs
        inline (``runtime/inline.py``): nothing else touches the store's state meanwhile."""

    # -- persisted values (Session.persist) ---------------------------------------------------

    async def keep_value(self, value_id: str, blob: bytes, ttl_s: float) -> None:
        """Stores a value for later runs, for ``ttl_s`` seconds."""

    async def kept_value(self, value_id: str) -> bytes | None:
        """A kept value, or None once released or expired."""

    async def release_value(self, value_id: str) -> bool:
        """Drops a kept value; False if it was gone already."""

    async def run_keys(self, run_id: str) -> list[str]:
        """Keys of the run that exist now (for tests: what is left after cleanup)."""

    async def close(self) -> None: ...
