"""A run's records from its events: phases, gaps, first calls, starts, the makespan."""

from __future__ import annotations

import pytest

from shoal import events
from shoal.metrics.records import StartSample, run_record


def entry(ev: events.Event, at: float) -> events.Event:
    """``ev`` as read back from the stream at server time ``at``."""
    ev.at = at
    return ev


def started(
    task: int, worker: str, time: float, kind: str | None = None, **kw: float
) -> events.Event:
    """A TASK_STARTED; ``latency``, ``boot``, ``queued``, ``by`` (the invoking task) and
    ``invoke`` fill its start fields."""
    return entry(
        events.TaskStarted(
            task=task,
            name="f",
            worker=worker,
            time=time,
            start_kind=kind,
            start_latency_s=kw.get("latency"),
            process_start_s=kw.get("boot"),
            queued_s=kw.get("queued"),
            invoked_by=None if (by := kw.get("by")) is None else int(by),
            invoke_s=kw.get("invoke"),
        ),
        time,
    )


def completed(task: int, worker: str, start: float, end: float, stored: float) -> events.Event:
    return entry(
        events.TaskCompleted(
            task=task,
            name="f",
            fn="m:f",
            fn_hash="c0de",
            worker=worker,
            start=start,
            end=end,
            stored_at=stored,
            output_bytes=10,
        ),
        stored,
    )


def test_phases_gaps_first_calls_starts_and_the_makespan() -> None:
    a, b = "h:1:x", "h:2:y"  # two processes
    evs = [
        entry(events.RunSubmitted(time=100.0, tasks=5, outputs=1, workflow="wf", slots=2), 100.0),
        # Two cold starts under way at once: the second began before the first was ready.
        started(0, a, 100.30, "cold", latency=0.30, boot=0.31),
        started(3, b, 100.45, "cold", latency=0.40, boot=0.41),
        completed(0, a, 100.31, 100.32, 100.33),
        started(1, a, 100.325),  # announced before 0's completion was recorded: it rode
        completed(1, a, 100.34, 100.35, 100.36),
        completed(3, b, 100.46, 100.47, 100.48),
        # Process a serves a second invocation: a warm start, handed over after its last one.
        started(2, a, 100.40, "warm", latency=0.001),
        completed(2, a, 100.41, 100.42, 100.43),
        started(4, a, 100.50),  # announced after 2's completion was recorded: alone
        completed(4, a, 100.52, 100.53, 100.54),
        entry(events.RunCompleted(), 100.60),
    ]
    record = run_record("r1", evs)
    s = record.summary
    assert s.state == "completed" and s.makespan_s == pytest.approx(0.60)
    assert s.workflow == "wf" and s.slots == 2 and s.cold_starts == 2 and s.warm_starts == 1
    by = record.by_task
    assert by[0].worker == f"{a}#1" and by[2].worker == f"{a}#2" and by[3].worker == f"{b}#1"
    assert by[0].prep_s == pytest.approx(0.01) and by[0].exec_s == pytest.approx(0.01)
    assert by[0].store_s == pytest.approx(0.01) and by[0].start_kind == "cold"
    assert by[0].gap_s is None and by[1].gap_s == pytest.approx(0.02)  # 0 returned at .32
    assert by[2].gap_s is None  # first task of its invocation
    assert by[4].gap_s is None  # did not ride: a start of its own
    # A function's first call in each process: 0 on a, 3 on b; 2 is a's second invocation.
    assert [t for t, x in sorted(by.items()) if x.process_first] == [0, 3]
    cold = sorted((x for x in record.starts if x.kind == "cold"), key=lambda x: x.ready)
    assert [x.overlap for x in cold] == [0, 1]
    warm = [x for x in record.starts if x.kind == "warm"]
    assert len(warm) == 1 and warm[0].handover_s == pytest.approx(100.40 - 100.36)


def test_a_run_that_did_not_complete_has_no_makespan() -> None:
    evs = [
        entry(events.RunSubmitted(time=1.0, tasks=2, outputs=1), 1.0),
        started(0, "h:1:x", 1.1, "cold", latency=0.1),
        completed(0, "h:1:x", 1.1, 1.2, 1.3),
        entry(events.RunFailed(task=1), 2.0),
    ]
    record = run_record("r2", evs)
    assert record.summary.state == "failed" and record.summary.makespan_s is None
    assert len(record.samples) == 1  # what completed was measured all the same


def invoked(
    task: int, worker: str, time: float, by: int, invoke: float, **kw: float
) -> events.Event:
    """The first task of an invocation a task's completion made (a warm start)."""
    return started(
        task, worker, time, "warm", **{"latency": 0.001, "queued": 0.0, **kw}, by=by, invoke=invoke
    )


def test_a_task_records_the_invocations_its_completion_made_and_the_latest_latency() -> None:
    a, b, c = "h:1:x", "h:2:y", "h:3:z"
    evs = [
        entry(events.RunSubmitted(time=100.0, tasks=4, outputs=1), 100.0),
        started(0, a, 100.01, "warm", latency=0.001),
        completed(0, a, 100.02, 100.03, 100.04),
        invoked(1, b, 100.05, by=0, invoke=0.010),
        invoked(2, c, 100.09, by=0, invoke=0.050, queued=0.035),
        completed(1, b, 100.06, 100.07, 100.08),
        completed(2, c, 100.10, 100.11, 100.12),
        started(3, a, 100.13),
        completed(3, a, 100.14, 100.15, 100.16),
        entry(events.RunCompleted(), 100.2),
    ]
    record = run_record("r1", evs)
    by = record.by_task
    assert by[0].invoked == 2 and by[0].invoke_s == pytest.approx(0.050)
    assert all(by[t].invoked == 0 and by[t].invoke_s is None for t in (1, 2, 3))
    made = [s for s in record.starts if s.invoked_by == 0]
    assert sorted((s.invoke_s, s.queued_s) for s in made) == [(0.010, 0.0), (0.050, 0.035)]
    [submitted] = [s for s in record.starts if s.invoked_by is None]
    assert submitted.invoke_s is None
    # The starts keep it through the history's packing.
    back = [StartSample.unpack(s.pack()) for s in made]
    assert [(s.invoked_by, s.invoke_s, s.queued_s) for s in back if s] == [
        (None, s.invoke_s, s.queued_s) for s in made
    ]


def test_a_hand_over_is_counted_only_when_the_invocation_waited_for_the_slot() -> None:
    a = "h:1:x"
    evs = [
        entry(events.RunSubmitted(time=100.0, tasks=3, outputs=1), 100.0),
        started(0, a, 100.01, "warm", latency=0.001),
        completed(0, a, 100.02, 100.03, 100.04),
        # Came to the idle process 0.5 s later: that is idle time, not a hand-over.
        invoked(1, a, 100.54, by=0, invoke=0.5, queued=0.0001),
        completed(1, a, 100.55, 100.56, 100.57),
        # Waited 20 ms in the queue for this slot: a hand-over of 3 ms.
        invoked(2, a, 100.60, by=1, invoke=0.05, queued=0.02),
        completed(2, a, 100.61, 100.62, 100.63),
        entry(events.RunCompleted(), 100.7),
    ]
    starts = run_record("r1", evs).starts
    assert [s.handover_s for s in starts][1] is None
    assert starts[2].handover_s == pytest.approx(0.03)


def test_a_start_keeps_its_cpu_share_through_the_history_and_old_records_still_read() -> None:
    sample = StartSample("cold", 0.2, 0.25, 442, 100, 0.001, cpu=0.2499, invoke_s=0.21)
    back = StartSample.unpack(sample.pack())
    assert back is not None and (back.cpu, back.memory_mb, back.invoke_s) == (0.2499, 442, 0.21)
    old = sample.pack()[:9]  # recorded before invocation latencies and shares
    found = StartSample.unpack(old)
    assert found is not None and found.cpu is None and found.invoke_s is None
    assert StartSample.unpack(sample.pack()[:10]) is None  # no format has 10 items
