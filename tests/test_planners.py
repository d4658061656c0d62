"""Planners: names and bad inputs, what each decides on graphs whose best plan is known, the
plan a run records, and that every plan runs to the reference result on pools of 1-3 slots."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shoal
from reference import evaluate
from shoal.backends import LocalProcesses
from shoal.backends.cpu import lambda_cpu
from shoal.events import RunSubmitted, TaskStarted, decode
from shoal.graph import freeze
from shoal.metrics.history import FunctionHistory, HistoryView, SizeHistory, _sums, size_key
from shoal.metrics.records import TaskSample
from shoal.planners import (
    Default,
    NonUniform,
    Problem,
    Simple,
    Uniform,
    Wukong,
    by_name,
    planned,
)
from shoal.planning import Plan, Size, TaskPlan
from shoal.planning.forecast import identities
from shoal.planning.simulate import Platform
from test_random_dags import dags

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

import fan_out


@shoal.task
def step(x: int) -> int:
    return x + 1


@shoal.task
def gather(*xs: int) -> int:
    return sum(xs)


def chain(n: int) -> shoal.Node[int]:
    node = step(0)
    for _ in range(n - 1):
        node = step(node)
    return node


def problem(node: Any, exec_s: float | None = None, slots: int = 2) -> Problem:
    """The planning problem of ``node`` on ``slots`` slots; with ``exec_s``, a history in
    which every function takes that long (and every output is 8 bytes)."""
    frozen = freeze([node])
    ident = identities(frozen)
    view = HistoryView()
    if exec_s is not None:
        for fn, code in {ident(t) for t in frozen.graph.task_ids()}:
            samples = [
                TaskSample(fn, code, 0, 1, "w", None, None, 8, 1, 0, 3e-4, 0.0, exec_s, 8, 3e-4)
                for _ in range(20)
            ]
            sh = SizeHistory(_sums(samples), samples)
            view.functions[(fn, code)] = FunctionHistory(fn, code, {size_key(None, None): sh})
    return Problem(frozen.graph, ident, view, Platform(slots=slots))


def workers_of(plan: Plan) -> Counter[int | None]:
    return Counter(p.worker for p in plan.tasks.values())


def test_names_and_bad_planners_are_refused_with_what_is_known() -> None:
    assert isinstance(by_name("uniform"), Uniform) and by_name("none") is None
    with pytest.raises(shoal.UsageError, match="unknown planner 'fastest'; known: default, "):
        by_name("fastest")
    with pytest.raises(shoal.ConfigError, match="SHOAL_PLANNER"):
        shoal.Settings.from_env(planner="fastest")
    with shoal.Session.for_scheduler("sync") as s:
        with pytest.raises(shoal.UsageError, match="planner must be a planner object"):
            s.compute(step(1), planner=3)  # type: ignore[call-overload]
        with pytest.raises(shoal.UsageError, match="either plan= or planner="):
            s.compute(step(1), plan={0: 1}, planner="wukong")
    with pytest.raises(ValueError, match="memory_mb must be an integer >= 1"):
        Uniform(memory_mb=0)


def test_a_planner_that_returns_no_plan_is_named() -> None:
    class Broken:
        name = "broken"

        def params(self) -> dict[str, Any]:
            return {}

        def plan(self, problem: Problem) -> Plan:
            return {0: 1}  # type: ignore[return-value]

    with pytest.raises(
        TypeError, match="planner 'broken' returned dict, not a shoal.planning.Plan"
    ):
        planned(problem(step(1)), Broken())


def test_wukong_spreads_every_fan_out_and_every_root_one_task_a_worker() -> None:
    p = problem(gather(*[step(step(i)) for i in range(4)]))
    plan = Wukong().plan(p)
    spread = {t for t, tp in plan.tasks.items() if [o.kind for o in tp.optimizations] == ["spread"]}
    assert spread == set(p.graph.roots()) and all(tp.worker is None for tp in plan.tasks.values())


def test_simple_keeps_chains_and_splits_fan_outs() -> None:
    seed = step(0)
    node = gather(*[step(step(seed)) for _ in range(3)])
    plan = Simple().plan(problem(node))
    # The seed's first branch stays with it; each other branch, a worker of its own; the
    # fan-in goes with its first input.
    assert sorted(workers_of(plan).values()) == [2, 2, 4]


def simulated_workers(plan: Plan) -> int:
    assert plan.predicted is not None
    return len({times.worker for times in plan.predicted.tasks.values()})


def test_uniform_keeps_a_chain_on_one_worker_and_spreads_heavy_branches() -> None:
    assert simulated_workers(planned(problem(chain(30), exec_s=0.01), Uniform())) == 1
    heavy = gather(*[step(i) for i in range(8)])
    spread = planned(problem(heavy, exec_s=0.2, slots=2), Uniform())
    assert simulated_workers(spread) >= 2
    # Tiny branches: a worker each costs more than the work it would share.
    tiny = planned(problem(heavy, exec_s=1e-6, slots=2), Uniform())
    assert simulated_workers(tiny) < simulated_workers(spread)
    assert spread.makespan_s is not None and tiny.makespan_s is not None


def test_the_default_planner_plans_by_structure_without_history() -> None:
    p = problem(gather(*[step(i) for i in range(64)]))
    assert not p.known()
    plan = planned(p, Default())
    assert plan.planner == "default" and plan.confidence == "none"
    assert plan.predicted is not None and plan.makespan_s is not None
    # It keeps the fastest of its alternatives, which WUKONG's schedule is not (64 workers).
    wukong = planned(p, Wukong()).makespan_s
    assert wukong is not None and plan.makespan_s < wukong
    assert len({t.worker for t in plan.predicted.tasks.values()}) < 64


@pytest.mark.parametrize("name", ["default", "uniform", "simple", "wukong", "none"])
@given(outs=dags(max_tasks=25))
@settings(max_examples=15)
def test_every_planner_runs_random_graphs_to_the_reference(
    name: str, outs: list[shoal.Node[Any]]
) -> None:
    assert shoal.compute(*outs, scheduler="sync", planner=name) == evaluate(*outs)


@pytest.fixture(scope="module")
def pools(redis_url: str) -> Iterator[dict[int, shoal.Session]]:
    sessions = {
        n: shoal.Session(redis_url=redis_url, backend=LocalProcesses(max_workers=n), progress=False)
        for n in (1, 2, 3)
    }
    yield sessions
    for s in sessions.values():
        s.close()


@given(outs=dags(max_tasks=16), data=st.data())
@settings(max_examples=12, deadline=None)
def test_random_plans_never_deadlock_a_pool_of_one_to_three_slots(
    pools: dict[int, shoal.Session], outs: list[shoal.Node[Any]], data: st.DataObject
) -> None:
    n = len(freeze(outs).graph)
    workers = data.draw(st.integers(1, 4))
    pins = {t: w for t in range(n) if (w := data.draw(st.integers(-1, workers - 1))) >= 0}
    session = pools[data.draw(st.sampled_from([1, 2, 3]))]
    assert session.compute(*outs, plan=pins, timeout=60) == evaluate(*outs)


def test_a_run_records_its_planner_and_wukong_invokes_a_worker_per_branch(
    redis_url: str,
) -> None:
    width = 6
    with shoal.Session(
        redis_url=redis_url, backend=LocalProcesses(max_workers=2), progress=False
    ) as s:
        run = s.submit(fan_out.fan_out(width), planner="wukong")
        assert run.result(timeout=60) == (fan_out.reference(width),)
        entries = s._run(s.storage.events_range(run.id))
        sized = s.submit(fan_out.fan_out(width), planner=Uniform(memory_mb=512))
        assert sized.result(timeout=60) == (fan_out.reference(width),)
        sized_entries = s._run(s.storage.events_range(sized.id))
    evs = [decode(f, i) for i, f in entries]
    [submitted] = [e for e in evs if isinstance(e, RunSubmitted)]
    assert submitted.planner == "wukong" and submitted.predicted_makespan_s is not None
    invocations = [e for e in evs if isinstance(e, TaskStarted) and e.start_kind is not None]
    assert len(invocations) == width  # the seed's worker keeps one branch
    [again] = [e for e in (decode(f, i) for i, f in sized_entries) if isinstance(e, RunSubmitted)]
    assert again.planner == "uniform(memory_mb=512)"


def side_branches() -> shoal.Node[int]:
    seed = step(0)
    node = seed
    for _ in range(8):
        node = step(node)
    return gather(node, *[step(seed) for _ in range(2)])


def test_nonuniform_downgrades_only_off_the_critical_path_within_its_tolerance() -> None:
    p = problem(side_branches(), exec_s=0.05, slots=3)
    p.platform = Platform(slots=3, cpu_shares=True)
    plan = planned(p, NonUniform(sizes=[442, 1769, 3538], tolerance=0.05))
    assert plan.planner == "nonuniform(sizes=[442, 1769, 3538], tolerance=0.05)"
    sizes = {w: s.memory_mb or 0 for w, s in plan.workers.items()}
    assert plan.predicted is not None
    on_path = {
        w
        for t in plan.predicted.critical_path
        if t in plan.tasks and (w := plan.tasks[t].worker) is not None
    }
    assert all(sizes[w] == 3538 for w in on_path)
    assert min(sizes.values()) < 3538  # the side branches' worker got smaller
    # Every planned size states the CPU share it will have (Lambda's rule).
    assert all(s.cpu == lambda_cpu(s.memory_mb or 0) for s in plan.workers.values())
    # Within the tolerance of the plan with every worker at the best size.
    best = {w: 3538 for w in sizes}
    baseline = Plan(
        {t: TaskPlan(tp.worker, Size(3538, lambda_cpu(3538))) for t, tp in plan.tasks.items()},
        {w: Size(mb, lambda_cpu(mb)) for w, mb in best.items()},
    )
    base = planned(p, Fixed(baseline))
    assert base.makespan_s is not None and plan.makespan_s is not None
    assert plan.makespan_s <= base.makespan_s * 1.05 + 1e-9
    assert plan.predicted.gb_s < base.predicted.gb_s  # type: ignore[union-attr]


def test_nonuniform_refuses_bad_sizes_and_tolerances() -> None:
    with pytest.raises(ValueError, match="sizes must be a non-empty list"):
        NonUniform(sizes=[])
    with pytest.raises(ValueError, match="sizes must be a non-empty list"):
        NonUniform(sizes=[512, 0])
    with pytest.raises(ValueError, match="tolerance must be a fraction"):
        NonUniform(sizes=[512], tolerance=1.5)


class Fixed:
    """A planner that returns the plan it was made with."""

    name = "fixed"

    def __init__(self, plan: Plan) -> None:
        self.fixed = plan

    def params(self) -> dict[str, Any]:
        return {}

    def plan(self, problem: Problem) -> Plan:
        return self.fixed
