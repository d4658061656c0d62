"""The policy point: every choice the worker machine makes goes through its policy object, which
reads the plan; the machine's bounded event log reaches the error when a worker fails."""

from __future__ import annotations

from typing import Any

import pytest

import shoal
from shoal.backends.inprocess import InProcess
from shoal.graph import freeze
from shoal.optimizations import Cluster, check
from shoal.optimizations.policy import OptimizingPolicy, policy_for
from shoal.planning import Optimization, Plan, TaskPlan
from shoal.runtime.machine import (
    Complete,
    Completed,
    Execute,
    Executed,
    Invoke,
    MachineConfig,
    Started,
    WorkerMachine,
)
from shoal.runtime.policy import (
    DefaultPolicy,
    FetchDecision,
    OutputDecision,
    OutputFacts,
    Placement,
)
from shoal.storage.base import Completion, CompletionResult, TaskStart
from shoal.storage.memory import MemoryStorage

from .test_machine import done, f


class StoreAll(DefaultPolicy):
    """Encodes and stores every output, and says so."""

    def output(self, machine: WorkerMachine, facts: OutputFacts) -> OutputDecision:
        return OutputDecision(encode=True, must_store=True, acted=("store_all",))


class InPairs(DefaultPolicy):
    """Keeps nothing here; hands ready tasks on two per worker."""

    def place(self, machine: WorkerMachine, completed: int, ready: list[int]) -> Placement:
        return Placement([], [ready[i : i + 2] for i in range(0, len(ready), 2)], ("pairs",))


class StayWhenPlanned(DefaultPolicy):
    """Keeps every ready task whose plan carries a "stay" optimization: fed by the plan."""

    def place(self, machine: WorkerMachine, completed: int, ready: list[int]) -> Placement:
        def stays(t: int) -> bool:
            return any(o.kind == "stay" for o in machine.graph.plan_of(t).optimizations)

        keep = [t for t in ready if stays(t)]
        rest = DefaultPolicy().place(machine, completed, [t for t in ready if not stays(t)])
        return Placement(keep + rest.keep, rest.invoke)


class DropsAnInput(DefaultPolicy):
    def fetch(self, machine: WorkerMachine, task: int, missing: list[int]) -> FetchDecision:
        return FetchDecision(missing[1:])


def machine(graph: Any, policy: Any, start: list[int]) -> WorkerMachine:
    config = MachineConfig.plain("w-policy")
    config.policy = policy
    m = WorkerMachine(graph, None, config)
    assert m.handle(Started(start, {}))[0] == Execute(start[0], 1, {}, [])
    return m


def test_the_output_decision_is_the_policys_and_its_acted_optimizations_travel() -> None:
    g = freeze([f(f(1))]).graph  # a chain: by default the value never leaves the worker
    [default] = machine(g, DefaultPolicy(), [0]).handle(Executed(0, 1, {}))
    assert isinstance(default, Complete) and default.completion.output is None
    [stored] = machine(g, StoreAll(), [0]).handle(Executed(0, 1, {}))
    assert isinstance(stored, Complete)
    assert stored.completion.output is not None and stored.completion.must_store
    assert stored.acted == ("store_all",)


def test_placement_is_the_policys_shares_go_to_one_worker_each() -> None:
    src = f(1)
    g = freeze([f(src, i) for i in range(5)]).graph
    m = machine(g, InPairs(), [0])
    m.handle(Executed(0, 1, {}))
    ins = m.handle(Completed(0, done([1, 2, 3, 4, 5])))
    invokes = [i for i in ins if isinstance(i, Invoke)]
    assert [i.start for i in invokes] == [[1, 2], [3, 4], [5]]
    for i in invokes:
        assert i.subdag is not None and sorted(i.subdag.task_ids()) == i.start
    assert not any(isinstance(i, Execute) for i in ins)  # it kept none


def test_a_policy_reads_the_plan() -> None:
    src = f(1)
    g = freeze([f(src, i) for i in range(4)]).graph
    shoal.optimizations.register("stay", lambda params: None)
    stay = Optimization("stay")
    planned = Plan({3: TaskPlan(None, None, [stay]), 4: TaskPlan(None, None, [stay])}).apply(g)
    m = machine(planned, StayWhenPlanned(), [0])
    m.handle(Executed(0, 1, {}))
    ins = m.handle(Completed(0, done([1, 2, 3, 4])))
    # 3 and 4 stay as planned; of the others the default keeps one and hands on the rest.
    assert [i.start for i in ins if isinstance(i, Invoke)] == [[2]]
    assert ins[-1] == Execute(3, 1, {0: 1}, [])
    assert list(m.ready) == [4, 1]


def fan_out_machine(plan: Plan, width: int, parallelism: int | None) -> WorkerMachine:
    src = f(1)
    g = plan.apply(freeze([f(src, i) for i in range(width)]).graph)
    return machine(g, policy_for(g, parallelism), [0])


def test_without_optimizations_the_worker_gets_the_default_policy() -> None:
    g = freeze([f(f(1))]).graph
    assert type(policy_for(g, 2)) is DefaultPolicy
    planned = Plan({0: TaskPlan(None, None, [Cluster()])}).apply(g)
    assert isinstance(policy_for(planned, 2), OptimizingPolicy)


def test_cluster_keeps_the_whole_fan_out_and_says_so_on_every_kept_task() -> None:
    m = fan_out_machine(Plan({0: TaskPlan(None, None, [Cluster()])}), 4, parallelism=2)
    [complete] = m.handle(Executed(0, 1, {}))
    assert isinstance(complete, Complete) and complete.acted == ()  # it acted on others
    ins = m.handle(Completed(0, done([1, 2, 3, 4])))
    assert not any(isinstance(i, Invoke) for i in ins)  # no share left for another worker
    assert ins[-1] == Execute(1, 1, {0: 1}, [])
    assert list(m.ready) == [2, 3, 4]
    for t in (1, 2, 3, 4):
        [c] = m.handle(Executed(t, t, {}))
        assert isinstance(c, Complete) and c.acted == ("cluster",), t
        m.handle(Completed(t, done()))


def test_without_cluster_the_same_fan_out_is_split_across_workers() -> None:
    m = fan_out_machine(Plan(), 4, parallelism=2)
    m.handle(Executed(0, 1, {}))
    ins = m.handle(Completed(0, done([1, 2, 3, 4])))
    assert sorted(t for i in ins if isinstance(i, Invoke) for t in i.start) == [2, 3, 4]
    [c] = m.handle(Executed(1, 1, {}))
    assert isinstance(c, Complete) and c.acted == ()


def test_cluster_with_a_limit_keeps_that_many_and_shares_out_the_rest() -> None:
    m = fan_out_machine(Plan({0: TaskPlan(None, None, [Cluster(max_tasks=2)])}), 6, None)
    m.handle(Executed(0, 1, {}))
    ins = m.handle(Completed(0, done([1, 2, 3, 4, 5, 6])))
    assert [i.start for i in ins if isinstance(i, Invoke)] == [[3, 4], [5, 6]]
    assert ins[-1] == Execute(1, 1, {0: 1}, []) and list(m.ready) == [2]


def test_cluster_does_not_move_a_pinned_workers_tasks() -> None:
    src = f(1)
    g = freeze([f(src, i) for i in range(3)]).graph
    planned = Plan({0: TaskPlan(7, None, [Cluster()])}).apply(g)
    config = MachineConfig.plain("w-pinned")
    config.policy = policy_for(planned, 2)
    m = WorkerMachine(planned.subdag_for(7, [0]), 7, config)
    m.handle(Started([0], {}))
    m.handle(Executed(0, 1, {}))
    ins = m.handle(Completed(0, done([1, 2, 3])))
    # As without it: a pinned worker hands its flexible consumers on.
    assert sorted(t for i in ins if isinstance(i, Invoke) for t in i.start) == [1, 2, 3]


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda: Cluster(max_tasks=0), "max_tasks must be an integer >= 1"),
        (lambda: Cluster(max_tasks=True), "max_tasks must be an integer >= 1"),
        (
            lambda: check(Optimization("cluster", {"limit": 3})),
            r"unknown parameter\(s\) \['limit'\]",
        ),
        (
            lambda: check(Optimization("clustre")),
            "unknown optimization 'clustre'; known: .*cluster",
        ),
        (lambda: check("cluster"), "must be a shoal.planning.Optimization"),
        (lambda: shoal.optimizations.register("", lambda p: None), "non-empty string"),
        (lambda: shoal.optimizations.register("cluster", lambda p: None), "registered already"),
    ],
)
def test_bad_optimizations_are_refused_with_what_is_wrong(make: Any, says: str) -> None:
    with pytest.raises(shoal.UsageError, match=says):
        make()


def test_a_plan_with_a_misspelt_optimization_is_refused_before_it_runs() -> None:
    g = freeze([f(f(1))]).graph
    with pytest.raises(shoal.UsageError, match="plan entry of task 0: unknown optimization"):
        Plan({0: TaskPlan(None, None, [Optimization("clustre")])}).apply(g)


def test_a_policy_cannot_leave_an_input_behind() -> None:
    a, b = f(1), f(2)
    g = freeze([f(a, b)]).graph
    config = MachineConfig.plain("w")
    config.policy = DropsAnInput()
    m = WorkerMachine(g.subdag_for(None, [2]), None, config)
    with pytest.raises(ValueError, match=r"fetches \[1\] for task 2, which needs \[0, 1\]"):
        m.handle(Started([2], {}))


def test_the_log_is_bounded_and_names_events_without_values() -> None:
    config = MachineConfig.plain("w")
    config.log_size = 3
    chain = f(f(f(f(1))))
    m = WorkerMachine(freeze([chain]).graph, None, config)
    m.handle(Started([0], {}))
    for t in range(3):
        m.handle(Executed(t, "a secret value", {}))
        m.handle(Completed(t, done([t + 1])))
    assert m.logged() == [
        "Completed(task=1, first=True, ready=[2], invoke=[])",
        "Executed(task=2)",
        "Completed(task=2, first=True, ready=[3], invoke=[])",
    ]
    assert "secret" not in m.format_log() and m.format_log().startswith("last 3 events")


class BrokenStore(MemoryStorage):
    """A store whose completions fail: the worker cannot go on."""

    async def complete(
        self, run_id: str, completion: Completion, then: TaskStart | None = None
    ) -> CompletionResult:
        raise ConnectionError("the store went away")


def test_a_worker_that_fails_unexpectedly_reports_what_its_machine_saw() -> None:
    with (
        shoal.Session(backend=InProcess(), storage=BrokenStore(), progress=False) as s,
        pytest.raises(shoal.TaskError) as err,
    ):
        s.compute(f(f(1)), timeout=30)
    e = err.value
    assert (e.task, e.exc_type, e.message) == ("<worker>", "ConnectionError", "the store went away")
    assert "events of the worker machine" in e.traceback
    assert "Started(start=[0], inputs=[])" in e.traceback and "Executed(task=0)" in e.traceback
