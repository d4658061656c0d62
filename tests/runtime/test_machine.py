"""The worker state machine without any I/O: feed events, check the instructions."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

import shoal
from shoal.graph import freeze
from shoal.planning import Plan
from shoal.runtime.machine import (
    Complete,
    Completed,
    Execute,
    Executed,
    Exit,
    Fail,
    Failed,
    InboxPopped,
    Invoke,
    MachineConfig,
    Retry,
    RetryDue,
    Started,
    TaskFailure,
    WaitInbox,
    WorkerMachine,
    plain_encode,
)
from shoal.storage.base import CompletionResult


@shoal.task
def f(*xs: Any) -> Any:
    return sum(xs)


def config(inline: int = 64 * 1024) -> MachineConfig:
    return MachineConfig("w-test", inline, 0.1, plain_encode, lambda: 0.5)


def done(
    ready: Iterable[int] = (), invoke: Iterable[int] = (), first: bool = True
) -> CompletionResult:
    return CompletionResult(first, list(ready), list(invoke), False)


def test_chain_stays_on_one_worker_and_never_encodes() -> None:
    a = f(1)
    b = f(a)
    c = f(b)
    g = freeze([c]).graph
    m = WorkerMachine(g.subdag_for(None, [0]), None, config())
    [ex] = m.handle(Started([0], {}))
    assert ex == Execute(0, 1, {}, [])
    [comp] = m.handle(Executed(0, 1, {}))
    assert isinstance(comp, Complete)
    assert comp.completion.output is None  # its one consumer runs right here
    [ex] = m.handle(Completed(0, done([1])))
    assert ex == Execute(1, 1, {0: 1}, [])
    m.handle(Executed(1, 1, {}))
    [ex] = m.handle(Completed(1, done([2])))
    [comp] = m.handle(Executed(2, 1, {}))
    assert isinstance(comp, Complete)
    assert comp.completion.is_output and comp.completion.must_store
    assert comp.completion.output == plain_encode(comp.completion.task, 1)
    assert m.handle(Completed(2, done())) == [Exit("no more work")]


def test_fan_out_keeps_one_and_invokes_the_rest_with_inline_input() -> None:
    src = f(1)
    outs = [f(src, i) for i in range(3)]
    g = freeze(outs).graph
    m = WorkerMachine(g.subdag_for(None, [0]), None, config())
    m.handle(Started([0], {}))
    [comp] = m.handle(Executed(0, 1, {}))
    assert isinstance(comp, Complete)
    c = comp.completion
    # Small: it travels inline, and is stored too (a recovery elsewhere may need it).
    assert c.output is not None and c.must_store
    ins = m.handle(Completed(0, done([1, 2, 3])))
    invokes = [i for i in ins if isinstance(i, Invoke)]
    assert [i.start for i in invokes] == [[2], [3]]
    assert all(i.inputs == {0: c.output} for i in invokes)
    assert all(i.subdag is not None and i.subdag.task_ids() == i.start for i in invokes)
    assert isinstance(ins[-1], Execute) and ins[-1].task == 1


def test_large_fan_out_output_is_stored_not_inlined() -> None:
    src = f(1)
    outs = [f(src, i) for i in range(2)]
    g = freeze(outs).graph
    m = WorkerMachine(g.subdag_for(None, [0]), None, config(inline=4))
    m.handle(Started([0], {}))
    [comp] = m.handle(Executed(0, list(range(100)), {}))
    assert isinstance(comp, Complete)
    assert comp.completion.must_store
    invokes = [i for i in m.handle(Completed(0, done([1, 2]))) if isinstance(i, Invoke)]
    assert invokes and all(i.inputs == {} for i in invokes)


def test_fan_in_output_is_sent_for_conditional_storage() -> None:
    a, b = f(1), f(2)
    g = freeze([f(a, b)]).graph
    m = WorkerMachine(g.subdag_for(None, [0]), None, config())
    m.handle(Started([0], {}))
    [comp] = m.handle(Executed(0, 1, {}))
    assert isinstance(comp, Complete)
    # The consumer waits for another input: the store keeps the value if it is not ready.
    assert comp.completion.output is not None and not comp.completion.must_store
    assert m.handle(Completed(0, done([]))) == [Exit("no more work")]


def test_missing_inputs_are_fetched() -> None:
    a, b = f(1), f(2)
    g = freeze([f(a, b)]).graph
    m = WorkerMachine(g.subdag_for(None, [1]), None, config())
    m.handle(Started([1], {}))
    m.handle(Executed(1, 2, {}))
    [ex] = m.handle(Completed(1, done([2])))
    assert isinstance(ex, Execute)
    assert ex.task == 2 and ex.local == {1: 2} and ex.missing == [0]


def test_pinned_worker_waits_on_its_inbox_until_its_tasks_are_done() -> None:
    a = f(1)
    b = f(a)
    g = Plan.pinned({0: 0, 1: 7}).apply(freeze([b]).graph)
    sub = g.subdag_for(7, [])
    m = WorkerMachine(sub, 7, config())
    assert m.handle(Started([], {})) == [WaitInbox(7)]
    [ex] = m.handle(InboxPopped([1]))
    assert isinstance(ex, Execute)
    assert ex.task == 1 and ex.missing == [0]
    m.handle(Executed(1, 2, {0: 1}))
    assert m.handle(Completed(1, done())) == [Exit("no more work")]


def test_pinned_consumer_elsewhere_forces_storage_and_invocation() -> None:
    a = f(1)
    b = f(a)
    g = Plan.pinned({0: 0, 1: 7}).apply(freeze([b]).graph)
    m = WorkerMachine(g.subdag_for(0, []), 0, config())
    m.handle(Started([0], {}))
    [comp] = m.handle(Executed(0, 1, {}))
    assert isinstance(comp, Complete)
    assert comp.completion.must_store
    ins = m.handle(Completed(0, CompletionResult(True, [], [7], False)))
    assert ins[0] == Invoke(7, [], None, by=0)  # the invoked worker reports its latency


def test_retries_then_failure_record() -> None:
    g = freeze([f.options(retries=2)(1)]).graph
    m = WorkerMachine(g, None, config())
    m.handle(Started([0], {}))
    boom = TaskFailure("ValueError", "boom", "Traceback...", 123.0)
    [r1] = m.handle(Failed(0, boom))
    assert isinstance(r1, Retry) and r1.attempt == 1
    due = m.handle(RetryDue(0))[0]
    assert isinstance(due, Execute) and due.attempt == 2
    [r2] = m.handle(Failed(0, boom))
    assert isinstance(r2, Retry) and r2.delay_s > r1.delay_s
    fail, ex = m.handle(Failed(0, boom))
    assert isinstance(fail, Fail) and isinstance(ex, Exit)
    rec = fail.record
    assert (rec.task, rec.name, rec.attempt, rec.exc_type, rec.message, rec.worker) == (
        0,
        "f",
        3,
        "ValueError",
        "boom",
        "w-test",
    )


def test_duplicate_completion_changes_nothing_here() -> None:
    a = f(1)
    g = freeze([f(a)]).graph
    m = WorkerMachine(g.subdag_for(None, [0]), None, config())
    m.handle(Started([0], {}))
    m.handle(Executed(0, 1, {}))
    assert m.handle(Completed(0, done(first=False))) == [Exit("no more work")]


def test_starting_a_task_of_another_worker_is_refused() -> None:
    g = Plan.pinned({0: 3}).apply(freeze([f(f(1))]).graph)
    with pytest.raises(ValueError, match="pinned to worker 3"):
        WorkerMachine(g, None, config()).handle(Started([0], {}))


def test_recovery_recomputes_lost_chain_links_then_resumes() -> None:
    """A worker died running c; a and b were done here but their outputs were never stored."""
    a = f(1)
    b = f(a)
    c = f(b)
    d = f(c)
    g = freeze([d]).graph
    m = WorkerMachine(g.subdag_for(None, [0]), None, config(), recompute=[0, 1], resume=[2])
    assert m.handle(Started([0], {})) == [Execute(0, 1, {}, [])]
    m.handle(Executed(0, 1, {}))
    # a's completion is a repeat: b (also recomputed) becomes ready here all the same.
    assert m.handle(Completed(0, done(first=False))) == [Execute(1, 1, {0: 1}, [])]
    m.handle(Executed(1, 1, {}))
    assert m.handle(Completed(1, done(first=False))) == [Execute(2, 1, {1: 1}, [])]
    m.handle(Executed(2, 1, {}))
    # c completes for the first time: from here on the run goes on as usual.
    assert m.handle(Completed(2, done([3]))) == [Execute(3, 1, {2: 1}, [])]


def test_recovery_does_not_wander_into_done_work_elsewhere() -> None:
    a = f(1)
    left, right = f(a, 1), f(a, 2)
    g = freeze([left, right]).graph
    m = WorkerMachine(g.subdag_for(None, [0]), None, config(), recompute=[0], resume=[1])
    m.handle(Started([0], {}))
    m.handle(Executed(0, 1, {}))
    ins = m.handle(Completed(0, done(first=False)))
    assert ins == [Execute(1, 1, {0: 1}, [])]  # only the resumed task, not the other branch


def test_pinned_recovery_skips_done_tasks_and_waits_for_the_rest() -> None:
    a = f(1)
    b = f(a)
    c = f(b, f(5))
    g = freeze([c]).graph
    order = g.topo_order()
    pinned = Plan.pinned({t: 0 for t in order}).apply(g)
    # a and f(5) done; b was lost; c waits for b.
    a_id, b_id = order[0], order[1]
    five = next(t for t in order if t not in (a_id, b_id) and not g.deps(t))
    m = WorkerMachine(
        pinned.subdag_for(0, []), 0, config(), recompute=[a_id], resume=[b_id], skip=[five]
    )
    assert m.mine_left == 3
    ins = m.handle(Started([a_id], {}))
    assert ins == [Execute(a_id, 1, {}, [])]
