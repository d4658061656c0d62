"""A run's state and its transitions: the one definition of how a run counts.

Workers never ask a scheduler what to run next: each completion changes the run's state and
learns, from that change alone, which tasks became ready and where they go. This module is that
change as plain synchronous code over a :class:`RunState`, with an injected clock for leases and
no I/O, so the in-memory store (:mod:`.memory`) and a discrete-event plan simulator run the same
transitions. :mod:`.scripts` is the server-side implementation of the same contract (Lua, one
script per change, atomic on Redis); the differential test ``tests/storage/test_differential.py``
feeds both the same random operations and compares every answer and the final state.

The algorithm
-------------

- **Complete** (:meth:`RunState.complete`): the first completion of a task *claims* it (drops
  its task lease, marks it done); a repeat changes nothing else and reports ``first=False``.
  Each downstream task is *counted down*: a task with one dependency is ready at once, one with
  more counts its completed dependencies and is ready when the count reaches ``ndeps``. A ready
  task pinned to another worker goes to that worker's inbox, and the worker is reported for
  invocation the first time it receives work; any other ready task is returned to the caller.
  The output is stored if the caller says it must be or if some downstream task still waits
  (it will run later, maybe elsewhere). TASK_COMPLETED is appended; a requested output counts
  down ``outputs_left`` (*output done*: at zero the run is completed, RUN_COMPLETED). An element
  of a map then counts down its map's *gather*; the element that takes it to zero *finishes the
  map*: the map is done, its static consumers are counted down, its TASK_COMPLETED carries the
  width, and it may be a requested output itself.
- **Expand** (:meth:`RunState.expand`): a chain's root claims the expansion (the root's width
  is recorded once; a repeat changes nothing), every map of the chain records the width and
  gets a gather counter, the source's items are stored as done outputs, the root's elements are
  ready, MAP_EXPANDED is appended; with width 0 every map of the chain finishes at once.
- **Every ready task is leased** until its worker holds it (the change's *result*), so a worker
  lost anywhere between ready and completed shows up in :meth:`RunState.expired`.
- **Fail** (:meth:`RunState.fail`): the first terminal failure of a run that has not ended
  records its error and appends TASK_FAILED and RUN_FAILED; later ones change nothing.

A run whose state is gone (cleaned up, expired) refuses every change: that is the store's
concern (no :class:`RunState` to call), as is everything about keys and TTLs.

State
-----

``outputs_left: int``
    Requested outputs not done yet. The change that takes it to 0 appends RUN_COMPLETED and
    reports ``run_finished``; it never counts up.
``ended: str | None``
    None while the run is live, then ``"completed"``, ``"failed"`` or ``"cancelled"``, for good:
    only a live run can fail, complete or be cancelled (a failed run's last output completing
    late changes nothing).
``done: set[int]``
    Every id that completed: static tasks, elements, maps (by their gather or width 0) and
    the items of expanded chains. An id enters once; the change that adds it is its first.
``outputs: dict[int, bytes]``
    Stored outputs and items. Keys are a subset of ``done``; values are never empty (an empty
    blob counts as not sent, as on the server where ``''`` marks done-but-not-stored). A value
    is written only by the change that claims its id, so the first writer wins.
``pending: dict[int, int]``
    Downstream task (with ``ndeps > 1``) -> how many of its dependencies completed; below
    ``ndeps`` while it waits. Tasks with one dependency have no entry.
``gathers: dict[int, int]``
    Map -> elements still to complete; set to the width at expansion (width > 0). The
    completion that takes it to 0 finishes the map. (An element completing before its chain
    expanded would take it below 0; a valid run never does.)
``widths: dict[int, int]``
    Map -> width, for every map of an expanded chain and its root; a root in ``widths`` has
    expanded. Written once per chain.
``started: set[int]``
    Pinned workers invoked so far (by the client at submission, or reported by a change in
    ``invoke_workers``). A worker is reported at most once per run.
``inboxes: dict[int, deque[int]]``
    Pinned worker -> ids of its tasks that became ready elsewhere, in order, until popped.
    Never holds an empty deque.
``leases: dict[str, float]``
    Lease member (see :func:`.keys.leases`) -> expiry on the clock. Some lease covers a task
    from the change that made it ready until its completion or expansion drops them all: ``t``
    while a worker queues it, ``ht`` once handed to the platform, ``r`` while it runs.
``errors: dict[int, ErrorRecord]``
    Task -> its terminal failure; at most one entry, written with ``ended = "failed"``.
``crashes: dict[int, list[str]]``
    Task -> how each worker that died running it died, oldest first (only grows). A crash is
    counted when a platform reports the death while the task's running lease exists, or when
    that lease expires; the lease goes in both cases, so one death counts once.

Correspondence with :mod:`.scripts`
-----------------------------------

=============================  ==============================================================
here                           Lua (:mod:`.scripts`)
=============================  ==============================================================
``RunState.complete``          ``COMPLETE``
``RunState.expand``            ``EXPAND``
``RunState.fail``              ``FAIL``
``RunState.cancel``            ``CANCEL``
``RunState.take``              ``lease()`` in ``START`` (and in ``result``)
``RunState.renew``             ``RENEW`` (``ZADD XX``)
``RunState.release``           ``ZREM`` in :meth:`.redis.RedisStorage.release`
``RunState.expired``           ``EXPIRED``
``RunState.hand_off``          ``HANDOFF``
``RunState.crashed``           ``CRASHED``
``RunState._record_crash``     ``record_crash``
``RunState.task_states``       ``HMGET out`` in :meth:`.redis.RedisStorage.task_states`
``RunState.lists``             the ``lists`` part of ``START``
``RunState.pop_inbox``         ``BLMPOP`` in :meth:`.redis.RedisStorage.pop_inbox`
``RunState._claim``            ``claim``
``Change.count_down``          ``count_down``
``Change.output_done``         ``output_done``
``Change.finish_map``          ``finish_map``
``Change.result``              ``result``
=============================  ==============================================================

Fields map to keys of :mod:`.keys`: ``done`` and ``outputs`` are the ``out`` hash (``''`` for
done-not-stored), ``pending`` and ``gathers`` the ``pending`` hash (``g<map>`` for a gather),
``widths`` the ``maps`` hash, ``outputs_left``/``ended`` fields of ``meta``, ``started`` the
``started`` set, ``leases`` the ``leases`` sorted set (server milliseconds), ``inboxes`` the
``inbox:<worker>`` lists, ``errors`` the ``errors`` hash, ``crashes`` the ``crashes`` hash (one
line per death).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from .. import events
from .base import (
    Completion,
    CompletionResult,
    Downstream,
    ErrorRecord,
    Event,
    Expansion,
    Gather,
)
from .keys import HANDOFF, running_lease, task_lease, worker_lease

#: At most this many expired leases are reported per call (the server's ``LIMIT``).
EXPIRED_BATCH = 1000


@dataclass(frozen=True, slots=True)
class Step:
    """What a change answered and the events it appended, in order."""

    result: CompletionResult
    events: list[Event]


#: How a crash reads when a worker's running lease expired (nobody saw it die).
LOST = "lost (its worker stopped renewing its lease)"


def refused() -> CompletionResult:
    """The answer to a repeat, or to a change of a run whose state is gone."""
    return CompletionResult(first=False, ready=[], invoke_workers=[], run_finished=False)


@dataclass(eq=False)
class RunState:
    """One run's state (see the module docstring for each field's invariant)."""

    outputs_left: int
    #: Seconds, monotonic: lease expiries are on this clock.
    clock: Callable[[], float] = field(repr=False)
    ended: str | None = None
    done: set[int] = field(default_factory=set)
    outputs: dict[int, bytes] = field(default_factory=dict)
    pending: dict[int, int] = field(default_factory=dict)
    gathers: dict[int, int] = field(default_factory=dict)
    widths: dict[int, int] = field(default_factory=dict)
    started: set[int] = field(default_factory=set)
    inboxes: dict[int, deque[int]] = field(default_factory=dict)
    leases: dict[str, float] = field(default_factory=dict)
    errors: dict[int, ErrorRecord] = field(default_factory=dict)
    crashes: dict[int, list[str]] = field(default_factory=dict)

    # -- changes -----------------------------------------------------------------------------

    def complete(self, c: Completion, lease_s: float) -> Step:
        if not self._claim(c.task, self.done):
            return Step(refused(), [])
        self.done.add(c.task)
        ch = Change(self, c.worker)
        waits = ch.count_down(c.downstream)
        if c.output and (c.must_store or waits):
            self.outputs[c.task] = c.output  # the claim admits one writer: the first
        ch.events.append(_completed(c.task, c.event, self.clock()))
        if c.is_output:
            ch.output_done()
        for g in c.gathers:
            left = self.gathers.get(g.map, 0) - 1
            self.gathers[g.map] = left
            if left == 0:
                ch.finish_map(g)
        return ch.result(lease_s)

    def expand(self, x: Expansion, lease_s: float) -> Step:
        if not self._claim(x.root, self.widths):
            return Step(refused(), [])
        self.widths[x.root] = x.width
        ch = Change(self, x.worker)
        for g in x.maps:
            self.widths[g.map] = x.width
            if x.width:
                self.gathers[g.map] = x.width
        for i, blob in enumerate(x.items):
            self.done.add(x.item_base + i)
            if blob:
                self.outputs[x.item_base + i] = blob
            else:  # the server's '' marker: done, nothing stored
                self.outputs.pop(x.item_base + i, None)
        ch.ready.extend(x.element_base + i for i in range(x.width))
        ch.events.append(_expanded(x.root, x.width, x.event))
        if x.width == 0:
            for g in x.maps:
                ch.finish_map(g)
        return ch.result(lease_s)

    def cancel(self, reason: str) -> list[Event]:
        """The run stops before it ended: the event appended, none if it had ended."""
        if self.ended is not None:
            return []
        self.ended = "cancelled"
        return [{"type": "RUN_CANCELLED", "reason": reason}]

    def fail(self, record: ErrorRecord) -> list[Event]:
        """Records a terminal failure: the events appended, none if the run had ended."""
        if self.ended is not None:
            return []
        self.ended = "failed"
        self.errors[record.task] = record
        return [record.as_event(), _run_failed(record.task)]

    def _claim(self, task: int, marker: set[int] | dict[int, int]) -> bool:
        """How a change starts: the task's leases go; True unless ``task`` is marked already."""
        for m in (task_lease(task), running_lease(task), HANDOFF + task_lease(task)):
            self.leases.pop(m, None)
        return task not in marker

    # -- leases ------------------------------------------------------------------------------

    def take(self, members: Sequence[str], lease_s: float) -> None:
        """Leases ``members`` (a START), dropping what covered that work before: ``r<task>``
        replaces the task's queued and hand-off leases, any other member its hand-off."""
        for m in members:
            if m.startswith("r"):
                self.leases.pop("t" + m[1:], None)
                self.leases.pop(HANDOFF + "t" + m[1:], None)
            else:
                self.leases.pop(HANDOFF + m, None)
        self.lease(members, lease_s)

    def lease(self, members: Sequence[str], lease_s: float) -> None:
        """Leases ``members`` as they are (what a change does for the tasks it made ready)."""
        expiry = self.clock() + lease_s
        for m in members:
            self.leases[m] = expiry

    def renew(self, members: Sequence[str], lease_s: float) -> None:
        """Extends only leases still held: a dropped lease stays dropped."""
        expiry = self.clock() + lease_s
        for m in members:
            if m in self.leases:
                self.leases[m] = expiry

    def release(self, members: Sequence[str]) -> None:
        for m in members:
            self.leases.pop(m, None)

    def hand_off(self, members: Sequence[str], lease_s: float) -> None:
        """Work given to the platform: each lease becomes its hand-off (``h`` + member)."""
        self.release(members)
        self.lease([HANDOFF + m for m in members], lease_s)

    def crashed(
        self, task: int, how: str, worker: str, requeue: bool, lease_s: float
    ) -> tuple[int, list[Event]]:
        """The worker running ``task`` died: counted while the task's running lease exists; the
        lease becomes a hand-off (``requeue``) or an expired queued lease. Returns the crashes
        so far (0: not counted, -1: the run has ended) and the events appended."""
        if self.ended is not None:
            return -1, []
        if self.leases.pop(running_lease(task), None) is None:
            return 0, []
        event = self._record_crash(task, how, worker)
        if requeue:
            self.lease([HANDOFF + task_lease(task)], lease_s)
        else:
            self.leases[task_lease(task)] = self.clock()
        return len(self.crashes[task]), [event]

    def _record_crash(self, task: int, how: str, worker: str) -> Event:
        record = self.crashes.setdefault(task, [])
        record.append(how)
        event = {"type": "TASK_CRASHED", "task": str(task), "how": how, "crashes": str(len(record))}
        if worker:
            event["worker"] = worker
        return event

    def expired(self, grace_s: float) -> tuple[list[str], list[Event]]:
        """Members past their expiry (soonest first), each given ``grace_s`` more so that one
        expiry is reported once, and the events appended: an expired running lease counts a
        crash and becomes the hand-off of the recovery to come."""
        now = self.clock()
        gone = sorted((exp, m) for m, exp in self.leases.items() if exp <= now)[:EXPIRED_BATCH]
        appended = []
        for _, m in gone:
            if m.startswith("r"):
                task = int(m[1:])
                appended.append(self._record_crash(task, LOST, ""))
                del self.leases[m]
                m = HANDOFF + task_lease(task)
            self.leases[m] = now + grace_s
        return [m for _, m in gone], appended

    # -- reads -------------------------------------------------------------------------------

    def is_done(self, task: int) -> bool:
        """Completed, or (a map chain's root) expanded."""
        return task in self.done or task in self.widths

    def task_states(self, tasks: Sequence[int]) -> dict[int, bool | None]:
        """True = done and stored, False = done (kept by its worker), None = not done."""
        return {t: (t in self.outputs) if t in self.done else None for t in tasks}

    def lists(self, maps: Mapping[int, int]) -> dict[int, list[bytes]]:
        """Per map (-> id of its element 0) that expanded and whose every element's output is
        stored: those outputs in order."""
        got = {}
        for m, base in maps.items():
            width = self.widths.get(m)
            if width is None:
                continue
            found = [self.outputs.get(base + i) for i in range(width)]
            if all(b is not None for b in found):
                got[m] = [b for b in found if b is not None]
        return got

    def pop_inbox(self, worker: int, count: int) -> list[int]:
        """Up to ``count`` task ids from the front of ``worker``'s inbox."""
        inbox = self.inboxes.get(worker)
        if inbox is None:
            return []
        taken = [inbox.popleft() for _ in range(min(count, len(inbox)))]
        if not inbox:
            del self.inboxes[worker]
        return taken


@dataclass(eq=False)
class Change:
    """One change in progress (the Lua scripts' locals ``own``, ``ready``, ``invoke`` and
    ``finished``): what it made ready, whom it must invoke, the events it appends."""

    state: RunState
    #: The changing worker (None = flexible): ready tasks pinned to it come back here.
    worker: int | None
    ready: list[int] = field(default_factory=list)
    invoke: list[int] = field(default_factory=list)
    finished: bool = False
    events: list[Event] = field(default_factory=list)

    def count_down(self, downstream: Sequence[Downstream]) -> bool:
        """Counts down downstream tasks and routes the ready ones; True if one still waits."""
        s = self.state
        waits = False
        for d in downstream:
            count = d.ndeps
            if d.ndeps > 1:  # one dependency: ready at once, no counter
                count = s.pending.get(d.task, 0) + 1
                s.pending[d.task] = count
            if count < d.ndeps:
                waits = True
            elif d.worker is not None and d.worker != self.worker:
                s.inboxes.setdefault(d.worker, deque()).append(d.task)
                if d.worker not in s.started:
                    s.started.add(d.worker)
                    self.invoke.append(d.worker)
            else:
                self.ready.append(d.task)
        return waits

    def output_done(self) -> None:
        s = self.state
        s.outputs_left -= 1
        # A run that failed stays failed: its last output completing late changes nothing.
        if s.outputs_left == 0 and s.ended is None:
            s.ended = "completed"
            self.events.append(_run_completed())
            self.finished = True

    def finish_map(self, g: Gather) -> None:
        """A map's last element is done (or its width is 0): the map completes, once."""
        s = self.state
        if g.map in s.done:
            return
        s.done.add(g.map)
        self.count_down(g.downstream)
        self.events.append(_map_completed(g.map, s.widths.get(g.map, 0), g.event))
        if g.is_output:
            self.output_done()

    def result(self, lease_s: float) -> Step:
        """How a change ends: the tasks it made ready are leased until a worker holds them, and
        each pinned worker it reports for invocation is leased as handed off (``hw<worker>``)
        until that worker starts: whoever must invoke it may die first."""
        self.state.lease([task_lease(t) for t in self.ready], lease_s)
        self.state.lease([HANDOFF + worker_lease(w) for w in self.invoke], lease_s)
        return Step(CompletionResult(True, self.ready, self.invoke, self.finished), self.events)


# -- events (the only place this module builds them) ---------------------------------------
# Field for field what the Lua scripts write (``shoal.events`` declares the records): the
# change's own fields first, then the caller's, minus those the change sets itself.


def _fields(extra: Event, *reserved: str) -> Event:
    """A caller's event fields, without those the change sets itself."""
    return {k: v for k, v in extra.items() if k not in reserved}


def _completed(task: int, extra: Event, now: float) -> Event:
    # `stored_at`: when the completion (and the output with it) was recorded, on the store's
    # clock; the server's script stamps it with TIME.
    own = {"type": events.TaskCompleted.type, "task": str(task), "stored_at": f"{now:.6f}"}
    return {**own, **_fields(extra, "type", "task")}


def _map_completed(task: int, width: int, extra: Event) -> Event:
    own = {"type": events.TaskCompleted.type, "task": str(task), "width": str(width)}
    return {**own, **_fields(extra, "type", "task", "width")}


def _expanded(root: int, width: int, extra: Event) -> Event:
    own = {"type": events.MapExpanded.type, "task": str(root), "width": str(width)}
    return {**own, **_fields(extra, "type", "task", "width")}


def _run_completed() -> Event:
    return {"type": events.RunCompleted.type}


def _run_failed(task: int) -> Event:
    return {"type": events.RunFailed.type, "task": str(task)}
