"""The next task's start rides with the previous completion (one round trip per task): which
task the machine names, and that it runs next exactly as asked when the store started it."""

from __future__ import annotations

from typing import Any

import shoal
from shoal.backends.inprocess import InProcess
from shoal.graph import freeze
from shoal.runtime.machine import (
    Complete,
    Completed,
    Execute,
    Executed,
    Exit,
    Invoke,
    Started,
    TaskState,
    WorkerMachine,
)
from shoal.storage.base import Completion, CompletionResult, Fetched, TaskStart
from shoal.storage.memory import MemoryStorage

from .test_machine import config, done, f
from .test_policy import InPairs, machine

STARTED = Fetched(outputs={}, functions={}, constants={})


def started(ready: list[int]) -> CompletionResult:
    return CompletionResult(True, ready, [], False, started=STARTED)


def test_a_chain_names_its_consumer_and_runs_it_as_asked_when_it_started() -> None:
    g = freeze([f(f(f(1)))]).graph
    m = WorkerMachine(g, None, config())
    m.handle(Started([0], {}))
    [comp] = m.handle(Executed(0, 1, {}))
    assert isinstance(comp, Complete)
    assert comp.then == Execute(1, 1, {0: 1}, []) and comp.then_if_ready
    assert 1 not in m.state  # only asked about, until the answer
    # The store started it: the next instruction is that very Execute, and nothing else.
    assert m.handle(Completed(0, started([1]))) == [comp.then]
    assert m.state[1] is TaskState.RUNNING and list(m.ready) == []
    [comp] = m.handle(Executed(1, 2, {}))
    assert isinstance(comp, Complete) and comp.then == Execute(2, 1, {1: 2}, [])
    # Not started (the shell did not ask, or the store refused): the machine asks on its own.
    assert m.handle(Completed(1, done([2]))) == [Execute(2, 1, {1: 2}, [])]
    [comp] = m.handle(Executed(2, 3, {}))
    assert isinstance(comp, Complete) and comp.then is None  # the last task: nothing next
    assert m.handle(Completed(2, done())) == [Exit("no more work")]


def test_a_share_names_the_head_of_its_queue_unconditionally() -> None:
    g = freeze([f(1), f(2), f(3)]).graph
    m = WorkerMachine(g, None, config())
    assert m.handle(Started([0, 1, 2], {})) == [Execute(0, 1, {}, [])]
    [comp] = m.handle(Executed(0, 1, {}))
    assert isinstance(comp, Complete)
    assert comp.then == Execute(1, 1, {}, []) and not comp.then_if_ready
    assert m.handle(Completed(0, started([]))) == [comp.then]
    [comp] = m.handle(Executed(1, 2, {}))
    assert isinstance(comp, Complete) and comp.then == Execute(2, 1, {}, [])
    assert m.handle(Completed(1, started([]))) == [comp.then]
    m.handle(Executed(2, 3, {}))
    assert m.handle(Completed(2, done())) == [Exit("no more work")]  # run once each


def test_a_fan_in_waiting_for_others_is_named_and_runs_only_once_ready() -> None:
    a, b = f(1), f(2)
    g = freeze([f(a, b)]).graph
    m = WorkerMachine(g, None, config())
    m.handle(Started([0], {}))
    [comp] = m.handle(Executed(0, 1, {}))
    assert isinstance(comp, Complete)
    assert comp.then == Execute(2, 1, {0: 1}, [1]) and comp.then_if_ready
    # Task 1 is not done: the store readies nothing and starts nothing.
    assert m.handle(Completed(0, done([]))) == [Exit("no more work")]


def test_a_started_task_stays_here_whatever_the_policy_placed() -> None:
    """The policy hands everything on in pairs; the task that started with the completion
    leaves its pair and runs here."""
    src = f(1)
    g = freeze([f(src, i) for i in range(4)]).graph
    m = machine(g, InPairs(), [0])
    [comp] = m.handle(Executed(0, 1, {}))
    assert isinstance(comp, Complete) and comp.then is not None and comp.then.task == 1
    ins = m.handle(Completed(0, started([1, 2, 3, 4])))
    assert [i.start for i in ins if isinstance(i, Invoke)] == [[2], [3, 4]]
    assert ins[-1] == comp.then


def test_no_start_rides_during_a_recovery() -> None:
    g = freeze([f(f(1))]).graph
    m = WorkerMachine(g, None, config(), recompute=[0], resume=[1])
    m.handle(Started([0], {}))
    [comp] = m.handle(Executed(0, 1, {}))
    assert isinstance(comp, Complete) and comp.then is None


class Recording(MemoryStorage):
    """Records the leases each start takes, alone (fetch) or riding with a completion."""

    def __init__(self) -> None:
        super().__init__()
        self.starts: list[tuple[str, int | None, list[str]]] = []
        self.completing = False

    async def fetch(self, run_id: str, outputs: Any, *args: Any, **kw: Any) -> Fetched:
        if kw.get("starting") is not None and not self.completing:
            self.starts.append(("alone", kw["starting"], list(kw.get("lease", ()))))
        return await super().fetch(run_id, outputs, *args, **kw)

    async def complete(
        self, run_id: str, completion: Completion, then: TaskStart | None = None
    ) -> CompletionResult:
        self.completing = True
        try:
            result = await super().complete(run_id, completion, then)
        finally:
            self.completing = False
        if then is not None and result.started is not None:
            self.starts.append(("riding", then.task, list(then.lease)))
        return result


def test_a_worker_takes_over_what_it_received_at_its_first_start_and_rides_after() -> None:
    """Three roots in one share (the sync scheduler has one slot): the first start takes the
    running lease and the queued tasks' leases (replacing their hand-offs); each next task
    starts with the previous completion, taking its running lease only."""
    store = Recording()
    with shoal.Session(backend=InProcess(), storage=store, progress=False) as s:
        assert s.compute(f(1), f(2), f(3)) == (1, 2, 3)
    assert store.starts == [
        ("alone", 0, ["r0", "t1", "t2"]),
        ("riding", 1, ["r1"]),
        ("riding", 2, ["r2"]),
    ]
