"""Metric records: what one run measured, read back from its event stream.

Workers measure and report on the run's stream (:mod:`shoal.events`): TASK_STARTED (how the
worker started, its size, the subDAG it got), TASK_COMPLETED (the function's identity, input
bytes and fetch time, execution, output bytes; ``stored_at`` stamped by the store), and
WORKER_EXITED (busy and parked time of pinned workers). Every time is on the server's clock.
This module turns a finished run's events into records, in one place:

- :class:`TaskSample`, per completed task attempt: its function's identity, the size of the
  worker that ran it, and its phases: ``prep_s`` (start announced -> function called: the
  start's round trip, input fetch and decode), ``exec_s`` (the function), ``store_s``
  (function returned -> completion recorded: encoding, upload, the completion script);
- :class:`StartSample`, per invocation: cold or warm, its start (the process received the
  invocation -> ready; the wait for a free slot is not in it), process start;
- :class:`RunSummary`, per run: the makespan (one definition, RUN_SUBMITTED to RUN_COMPLETED on
  the server's clock), GB-seconds, CPU-seconds, cold and warm starts.

A worker without a memory limit counts as :data:`UNSIZED_MB` in GB-seconds, and every worker
as one vCPU in CPU-seconds (a worker runs one task at a time), until sizes are enforced.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from .. import events

#: What a worker with no memory limit counts as in GB-seconds.
UNSIZED_MB = 1024
#: Record format version, the first item of every packed sample (readers skip unknown ones).
FORMAT = 1


@dataclass(slots=True)
class TaskSample:
    """One completed task attempt. Plain (not frozen): the builder sets ``gap_s`` and
    ``process_first`` once it knows the worker's previous task (a run of tree-1024 makes
    2,047 of them; copying each to set two fields cost a third of the recording)."""

    fn: str
    code: str
    task: int
    attempt: int
    worker: str
    memory_mb: int | None
    cpu: float | None
    input_bytes: int
    inputs_fetched: int
    inputs_local: int
    prep_s: float
    fetch_s: float
    exec_s: float
    output_bytes: int
    store_s: float
    optimizations: tuple[str, ...] = ()
    #: The previous task on the same worker returned -> this one's function called (its
    #: completion, this start riding with it, the fetch); None for a worker's first task.
    gap_s: float | None = None
    #: For an invocation's first task: how the invocation started (``cold``: a new process).
    start_kind: str | None = None
    #: The first call of this function in its process (one-time costs: imports, caches).
    process_first: bool = False
    #: The invocations its completion made (new workers, pinned workers started) and the
    #: latest of their latencies: completion -> the last invoked worker's first task
    #: announced. Recorded for the run; not kept in the history's samples (starts are).
    invoked: int = 0
    invoke_s: float | None = None
    #: Server times: start announced, function called and returned, completion recorded.
    announced: float = 0.0
    start: float = 0.0
    end: float = 0.0
    stored_at: float = 0.0

    def pack(self) -> list[Any]:
        return [
            FORMAT,
            self.input_bytes,
            self.inputs_fetched,
            self.inputs_local,
            round(self.prep_s, 6),
            round(self.fetch_s, 6),
            round(self.exec_s, 6),
            self.output_bytes,
            round(self.store_s, 6),
            list(self.optimizations),
            self.memory_mb,
            self.cpu,
            None if self.gap_s is None else round(self.gap_s, 6),
            self.start_kind,
            self.process_first,
        ]

    @classmethod
    def unpack(cls, fn: str, code: str, raw: list[Any]) -> TaskSample | None:
        if not raw or raw[0] != FORMAT or len(raw) != 15:
            return None
        _, ib, nf, nl, prep, fetch, ex, ob, store, opts, mb, cpu, gap, kind, first = raw
        return cls(
            fn,
            code,
            -1,
            1,
            "",
            mb,
            cpu,
            ib,
            nf,
            nl,
            prep,
            fetch,
            ex,
            ob,
            store,
            tuple(opts),
            gap,
            kind,
            bool(first),
        )


@dataclass(frozen=True, slots=True)
class StartSample:
    """How one invocation's worker started."""

    kind: str  # cold | warm
    latency_s: float
    process_start_s: float | None
    memory_mb: int | None
    subdag_bytes: int
    subdag_decode_s: float
    #: For a cold start: how many other cold starts of the run were under way when it began
    #: (processes starting at once share the cores: the second of two took 0.29 s, the first
    #: 0.19 s, in one word-count run).
    overlap: int = 0
    #: Server time the worker was ready.
    ready: float = 0.0
    #: For a warm start right after another invocation of the run on the same process: from
    #: that one's last completion to this one being ready (its exit, the pool's hand-over,
    #: the start): what a freed slot costs before its next invocation runs.
    handover_s: float | None = None
    #: The task whose completion made the invocation (None: submission or recovery), and the
    #: invocation's latency: made -> its first task announced (server clock).
    invoked_by: int | None = None
    invoke_s: float | None = None
    #: Invocation queued -> handed to a process (the wait for a free slot).
    queued_s: float | None = None
    #: The CPU share the worker started under (None: not enforced, a whole core).
    cpu: float | None = None

    def pack(self) -> list[Any]:
        return [
            FORMAT,
            self.kind,
            self.latency_s,
            self.process_start_s,
            self.memory_mb,
            self.subdag_bytes,
            self.subdag_decode_s,
            self.overlap,
            None if self.handover_s is None else round(self.handover_s, 6),
            None if self.invoke_s is None else round(self.invoke_s, 6),
            None if self.queued_s is None else round(self.queued_s, 6),
            self.cpu,
        ]

    @classmethod
    def unpack(cls, raw: list[Any]) -> StartSample | None:
        # 9 or 11 items: recorded before invocation latencies or CPU shares were (unknown).
        if not raw or raw[0] != FORMAT or len(raw) not in (9, 11, 12):
            return None
        _, kind, latency, boot, mb, sub_bytes, sub_s, overlap, handover = raw[:9]
        invoke, queued = raw[9:11] if len(raw) >= 11 else (None, None)
        cpu = raw[11] if len(raw) == 12 else None
        return cls(
            kind,
            latency,
            boot,
            mb,
            sub_bytes,
            sub_s,
            overlap,
            handover_s=handover,
            invoke_s=invoke,
            queued_s=queued,
            cpu=cpu,
        )


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One run, as the history of its workflow keeps it."""

    run_id: str
    workflow: str
    state: str  # completed | failed | cancelled | running
    tasks: int
    planner: str
    submitted_at: float
    makespan_s: float | None
    predicted_makespan_s: float | None
    workers: int
    cold_starts: int
    warm_starts: int
    #: Memory x lifetime and memory x busy time of every worker, GB-s.
    gb_s: float
    busy_gb_s: float
    #: vCPU x lifetime, vCPU x busy time.
    cpu_s: float
    busy_cpu_s: float
    #: Memory sizes (MB) its workers ran at (None: no limit).
    sizes: tuple[int | None, ...] = ()
    #: The platform's slots (workers at once; None: no known bound).
    slots: int | None = None
    #: Each map chain's width, by its root's name (what a simulation expands it to).
    widths: dict[str, int] = field(default_factory=dict)
    #: Idle warm processes when it was submitted.
    warm: int = 0

    def pack(self) -> dict[str, Any]:
        return {
            "v": FORMAT,
            **{f: getattr(self, f) for f in self.__dataclass_fields__ if f != "sizes"},
            "sizes": list(self.sizes),
            "widths": dict(self.widths),
        }

    @classmethod
    def unpack(cls, raw: dict[str, Any]) -> RunSummary | None:
        if raw.get("v") != FORMAT:
            return None
        body = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        body["sizes"] = tuple(body.get("sizes", ()))
        return cls(**body)


@dataclass
class RunRecord:
    """Everything one run's events say, for the history."""

    summary: RunSummary
    samples: list[TaskSample] = field(default_factory=list)
    starts: list[StartSample] = field(default_factory=list)
    #: Task id -> its sample (the last attempt that completed), for planned-vs-actual.
    by_task: dict[int, TaskSample] = field(default_factory=dict)


@dataclass
class _Worker:
    memory_mb: int | None = None
    cpu: float | None = None
    first: float | None = None
    last: float = 0.0
    busy_s: float = 0.0
    boot_s: float = 0.0


#: An invocation queued for longer than this waited for a slot (one handed to an idle
#: process at once is queued for a tenth of a millisecond).
HANDOVER_QUEUED_S = 0.001


def run_record(run_id: str, evs: Iterable[events.Event]) -> RunRecord:
    """The records of one run from its events, in stream order."""
    submitted: events.RunSubmitted | None = None
    ended: tuple[str, float] | None = None
    announced: dict[tuple[int, int], events.TaskStarted] = {}
    workers: dict[str, _Worker] = {}
    samples: list[TaskSample] = []
    starts: list[StartSample] = []
    evs = list(evs)
    # Metric fields a buffered strategy uploaded apart from their completions.
    later = {(e.task, e.attempt, e.worker): e for e in evs if isinstance(e, events.TaskMetrics)}
    invocations: dict[str, int] = {}
    current: dict[tuple[int, int], str] = {}
    widths: dict[str, int] = {}
    for ev in evs:
        if isinstance(ev, events.RunSubmitted):
            submitted = ev
        elif isinstance(ev, events.TaskStarted):
            # A worker label names a process; each invocation it serves is a worker of its
            # own (its first TASK_STARTED says how it started).
            if ev.start_kind is not None:
                invocations[ev.worker] = invocations.get(ev.worker, 0) + 1
            label = f"{ev.worker}#{invocations.get(ev.worker, 0)}"
            announced[(ev.task, ev.attempt)] = ev
            current[(ev.task, ev.attempt)] = label
            w = workers.setdefault(label, _Worker())
            if w.first is None:
                w.first = ev.time
                w.memory_mb, w.cpu = ev.memory_mb, ev.cpu
            if ev.start_kind is not None and ev.start_latency_s is not None:
                w.boot_s = ev.process_start_s or 0.0
                before = workers.get(f"{ev.worker}#{invocations[ev.worker] - 1}")
                handover = None
                # A hand-over only when the invocation waited for that slot: one that came to
                # an idle process would count the idle time as a hand-over's cost.
                waited = ev.queued_s is None or ev.queued_s > HANDOVER_QUEUED_S
                if ev.start_kind == "warm" and before is not None and before.last > 0 and waited:
                    handover = max(0.0, ev.time - before.last)
                starts.append(
                    StartSample(
                        ev.start_kind,
                        ev.start_latency_s,
                        ev.process_start_s,
                        ev.memory_mb,
                        ev.subdag_bytes or 0,
                        ev.subdag_decode_s or 0.0,
                        ready=ev.time,
                        handover_s=handover,
                        invoked_by=ev.invoked_by,
                        invoke_s=ev.invoke_s,
                        queued_s=ev.queued_s,
                        cpu=ev.cpu,
                    )
                )
        elif isinstance(ev, events.TaskCompleted):
            extra = later.get((ev.task, ev.attempt, ev.worker))
            if extra is not None and not ev.fn:
                ev = _merged(ev, extra)
            key = (ev.task, ev.attempt)
            label = current.get(key, f"{ev.worker}#0")
            sample = _sample(ev, announced.get(key), workers, label)
            if sample is not None:
                samples.append(sample)
        elif isinstance(ev, events.MapExpanded):
            widths[ev.name] = ev.width
        elif isinstance(ev, events.WorkerExited) and ev.time is not None:
            w = workers.setdefault(f"{ev.worker}#{invocations.get(ev.worker, 0)}", _Worker())
            w.last = max(w.last, ev.time)
        elif ev.type in events.TERMINAL and ended is None:
            ended = (ev.type.removeprefix("RUN_").lower(), ev.at)
    samples = _with_gaps(samples)
    starts = _with_overlaps(starts)
    _with_invocations(samples, starts)
    summary = replace(_summary(run_id, submitted, ended, workers, starts), widths=widths)
    return RunRecord(summary, samples, starts, {s.task: s for s in samples})


def _with_invocations(samples: list[TaskSample], starts: list[StartSample]) -> None:
    """Each task's downstream invocations: the starts its completion made, and the latest of
    their latencies (a retried task's last attempt made them)."""
    by_task = {s.task: s for s in samples}
    for start in starts:
        made_by = by_task.get(start.invoked_by) if start.invoked_by is not None else None
        if made_by is None:
            continue
        made_by.invoked += 1
        if start.invoke_s is not None:
            made_by.invoke_s = max(made_by.invoke_s or 0.0, start.invoke_s)


def _with_overlaps(starts: list[StartSample]) -> list[StartSample]:
    """Each cold start with the number of cold starts under way when it began."""
    cold = sorted((s for s in starts if s.kind == "cold"), key=lambda s: s.ready - s.latency_s)
    out = [s for s in starts if s.kind != "cold"]
    for i, s in enumerate(cold):
        began = s.ready - s.latency_s
        under_way = sum(1 for o in cold[:i] if o.ready > began)
        out.append(replace(s, overlap=under_way))
    return out


def _with_gaps(samples: list[TaskSample]) -> list[TaskSample]:
    """Each sample with the gap since the previous task of its worker returned, and whether
    it was its function's first call in its process (a label's part before ``#``)."""
    previous: dict[str, TaskSample] = {}
    seen: set[tuple[str, str, str]] = set()
    out = []
    for s in sorted(samples, key=lambda s: s.start):
        before = previous.get(s.worker)
        previous[s.worker] = s
        process = (s.worker.partition("#")[0].partition("/")[0], s.fn, s.code)
        first = process not in seen
        seen.add(process)
        # A start announced after the previous completion was recorded did not ride with it
        # (a pinned worker back from its inbox, a fan-in started alone): a start of its own.
        rode = before is not None and s.announced < before.stored_at
        s.gap_s = max(0.0, s.start - before.end) if rode and before is not None else None
        s.process_first = first
        out.append(s)
    return out


def _merged(ev: events.TaskCompleted, m: events.TaskMetrics) -> events.TaskCompleted:
    return replace(
        ev,
        fn=m.fn,
        fn_hash=m.fn_hash,
        input_bytes=m.input_bytes,
        inputs_fetched=m.inputs_fetched,
        inputs_local=m.inputs_local,
        fetch_s=m.fetch_s,
        output_bytes=m.output_bytes,
        encode_s=m.encode_s,
        optimizations=m.optimizations,
    )


def _sample(
    ev: events.TaskCompleted,
    started: events.TaskStarted | None,
    workers: dict[str, _Worker],
    label: str,
) -> TaskSample | None:
    if not ev.fn or ev.start is None or ev.end is None:
        return None  # a gathered map's completion, or a record without metrics
    w = workers.setdefault(label, _Worker())
    stored = ev.stored_at if ev.stored_at is not None else ev.end
    w.busy_s += ev.end - ev.start
    w.last = max(w.last, stored)
    if w.first is None:
        w.first = ev.start
    announced = started.time if started is not None else ev.start
    kind = started.start_kind if started is not None else None
    return TaskSample(
        fn=ev.fn,
        code=ev.fn_hash,
        task=ev.task,
        attempt=ev.attempt,
        worker=label,
        memory_mb=w.memory_mb,
        cpu=w.cpu,
        input_bytes=ev.input_bytes,
        inputs_fetched=ev.inputs_fetched,
        inputs_local=ev.inputs_local,
        prep_s=max(0.0, ev.start - announced),
        fetch_s=ev.fetch_s,
        exec_s=max(0.0, ev.end - ev.start),
        output_bytes=ev.output_bytes,
        store_s=max(0.0, stored - ev.end),
        optimizations=ev.optimizations,
        start_kind=kind,
        announced=announced,
        start=ev.start,
        end=ev.end,
        stored_at=stored,
    )


def _summary(
    run_id: str,
    submitted: events.RunSubmitted | None,
    ended: tuple[str, float] | None,
    workers: dict[str, _Worker],
    starts: list[StartSample],
) -> RunSummary:
    gb_s = busy_gb_s = cpu_s = busy_cpu_s = 0.0
    for w in workers.values():
        if w.first is None:
            continue
        lifetime = max(0.0, w.last - w.first) + w.boot_s
        gb = (w.memory_mb or UNSIZED_MB) / 1024
        cpu = w.cpu or 1.0
        gb_s += gb * lifetime
        busy_gb_s += gb * w.busy_s
        cpu_s += cpu * lifetime
        busy_cpu_s += cpu * w.busy_s
    state, end_at = ended if ended is not None else ("running", None)
    # The one makespan: RUN_SUBMITTED's append to RUN_COMPLETED's, both on the server's clock
    # (``shoal show`` and ``shoal runs`` read the same two entries).
    at = (submitted.at or submitted.time) if submitted is not None else 0.0
    makespan = None
    if submitted is not None and end_at is not None and state == "completed":
        makespan = max(0.0, end_at - at)
    return RunSummary(
        run_id=run_id,
        workflow=submitted.workflow if submitted is not None else "",
        state=state,
        tasks=submitted.tasks if submitted is not None else 0,
        planner=submitted.planner if submitted is not None else "",
        submitted_at=at,
        makespan_s=makespan,
        predicted_makespan_s=submitted.predicted_makespan_s if submitted is not None else None,
        workers=sum(1 for w in workers.values() if w.first is not None),
        cold_starts=sum(1 for s in starts if s.kind == "cold"),
        warm_starts=sum(1 for s in starts if s.kind == "warm"),
        gb_s=round(gb_s, 6),
        busy_gb_s=round(busy_gb_s, 6),
        cpu_s=round(cpu_s, 6),
        busy_cpu_s=round(busy_cpu_s, 6),
        sizes=tuple(sorted({w.memory_mb for w in workers.values()}, key=lambda m: m or 0)),
        slots=submitted.slots if submitted is not None else None,
        warm=submitted.warm if submitted is not None else 0,
    )
