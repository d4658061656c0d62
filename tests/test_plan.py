"""The plan table across the binding: named records, round trips, cuts, sizes and bad plans."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import shoal
from reference import evaluate
from shoal import _core
from shoal.backends.base import Resources
from shoal.graph import freeze
from shoal.planning import Optimization, Plan, Size, TaskPlan
from shoal.runtime.resources import resources_for, worker_resources


@shoal.task
def mix(seed: int, *ups: Any) -> int:
    acc = seed
    for u in ups:
        acc = (acc * 31 + u) % 1_000_003
    return acc


@shoal.task(memory_mb=64)
def small(x: int) -> int:
    return x + 1


def chain_and_fan() -> shoal.Node[Any]:
    a = mix(1)
    b, c = mix(2, a), mix(3, a)
    return mix(4, b, c)


params = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.lists(st.integers(0, 2**32 - 1), max_size=4),
)
optimizations = st.builds(
    Optimization,
    st.text(min_size=1, max_size=12),
    st.dictionaries(st.text(min_size=1, max_size=6), params, max_size=3),
)
sizes = st.builds(
    Size,
    st.one_of(st.none(), st.integers(1, 2**32 - 1)),
    st.one_of(st.none(), st.floats(0.01, 64)),
)


@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.integers(0, 3)),
            st.one_of(st.none(), sizes),
            st.lists(optimizations, max_size=2),
        ),
        min_size=4,
        max_size=4,
    ),
    st.dictionaries(st.integers(0, 3), sizes, max_size=4),
)
def test_random_plans_round_trip_and_every_cut_keeps_its_tasks_entries(
    per_task: list[tuple[int | None, Size | None, list[Optimization]]],
    workers: dict[int, Size],
) -> None:
    graph = freeze([chain_and_fan()]).graph
    tasks = {t: TaskPlan(w, s, o) for t, (w, s, o) in zip(graph.task_ids(), per_task, strict=True)}
    # The core's round trip: kinds it has never heard of are stored as given (a Plan checks
    # kinds against the registry before it gets here).
    planned = graph.with_plan(tasks, [_core.WorkerPlan(w, s) for w, s in sorted(workers.items())])
    back = _core.Graph.decode(planned.encode())
    for t, want in tasks.items():
        assert back.plan_of(t) == want
        assert back.plan_of(t).optimizations == want.optimizations
    for w, size in workers.items():
        assert back.worker_size(w) == size
    for t in back.task_ids():
        owner = back.worker(t)
        sub = back.subdag_for(owner, [] if owner is not None else [t])
        for held in sub.task_ids():
            assert sub.plan_of(held) == tasks[held]


def test_a_new_optimization_kind_needs_no_change_in_the_core() -> None:
    # A kind the core has never heard of, with every parameter type: stored, cut and decoded
    # as given.
    novel = Optimization(
        "speculate_on_fanout",
        {"copies": 2, "eager": True, "ratio": 0.25, "mode": "race", "upstreams": [0, 1]},
    )
    graph = freeze([chain_and_fan()]).graph
    with pytest.raises(shoal.UsageError, match="unknown optimization 'speculate_on_fanout'"):
        Plan({3: TaskPlan(None, None, [novel])}).apply(graph)
    shoal.optimizations.register("speculate_on_fanout", lambda params: None)
    planned = Plan({3: TaskPlan(None, None, [novel])}).apply(graph)
    sub = _core.Graph.decode(planned.subdag_for(None, [0]).encode())
    (got,) = sub.plan_of(3).optimizations
    assert got == novel
    assert got.kind == "speculate_on_fanout"
    assert got.params == {
        "copies": 2,
        "eager": True,
        "ratio": 0.25,
        "mode": "race",
        "upstreams": [0, 1],
    }
    assert type(got.params["eager"]) is bool and type(got.params["copies"]) is int


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"x": object()}, "parameter 'x' must be a bool, an int"),
        ({"big": 2**64}, "parameter 'big' must be"),
        ({"ids": [1, -2]}, "parameter 'ids' must be"),
        ({"ids": ["a"]}, "parameter 'ids' must be"),
        ({"nested": {"a": 1}}, "parameter 'nested' must be"),
        ({3: 1}, "parameter names must be strings"),
    ],
)
def test_bad_optimization_parameters_are_refused_by_name(params: Any, says: str) -> None:
    with pytest.raises(TypeError, match=says):
        Optimization("kind", params)


def test_bad_plans_are_refused_with_what_is_wrong() -> None:
    graph = freeze([chain_and_fan()]).graph
    with pytest.raises(shoal.GraphError, match="task 1 has 0 MB"):
        Plan({1: TaskPlan(size=Size(memory_mb=0))}).apply(graph)
    with pytest.raises(shoal.GraphError, match="CPU share of -1"):
        Plan(workers={0: Size(cpu=-1.0)}).apply(graph)
    with pytest.raises(shoal.GraphError, match="task 9 is not in the graph"):
        Plan({9: TaskPlan()}).apply(graph)
    with pytest.raises(TypeError, match="plan entry of task 1 must be"):
        Plan({1: 3}).apply(graph)  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="plan size of worker 0 must be"):
        Plan(workers={0: 512}).apply(graph)  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="plan must be a shoal.planning.Plan"):
        shoal.compute(chain_and_fan(), scheduler="sync", plan=[(0, 1)])  # type: ignore[call-overload]


def test_planned_sizes_win_over_options_and_workers_have_their_own() -> None:
    out = mix(0, small(1), small(2))
    graph = freeze([out]).graph
    assert resources_for(graph, [0, 1]) == Resources(memory_mb=64)
    plan = Plan({0: TaskPlan(size=Size(memory_mb=1024)), 2: TaskPlan(worker=5)})
    plan = Plan(plan.tasks, {5: Size(memory_mb=3008, cpu=1.7)})
    planned = plan.apply(graph)
    assert resources_for(planned, [0, 1]) == Resources(memory_mb=1024)
    assert resources_for(planned, [1]) == Resources(memory_mb=64)
    assert worker_resources(planned, 5, [2]) == Resources(memory_mb=3008)
    # Without a worker size: what its tasks need.
    assert worker_resources(Plan.pinned({1: 6}).apply(graph), 6, [1]) == Resources(memory_mb=64)


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_a_plan_with_sizes_and_optimizations_runs_to_the_reference_result(scheduler: str) -> None:
    out = chain_and_fan()
    plan = Plan(
        {
            0: TaskPlan(0, Size(512)),
            1: TaskPlan(1, None, [shoal.optimizations.Cluster(max_tasks=1)]),
            2: TaskPlan(None, None, [shoal.optimizations.Cluster()]),
            3: TaskPlan(0),
        },
        {0: Size(512, 0.5), 1: Size(256)},
    )
    assert shoal.compute(out, scheduler=scheduler, plan=plan) == evaluate(out)


def test_records_are_named_and_frozen() -> None:
    graph = freeze([mix(0, small.options(retries=2, timeout_s=1.5)(1))]).graph
    o = graph.options(0)
    assert (o.retries, o.memory_mb, o.timeout_s, o.name) == (2, 64, 1.5, None)
    (d,) = graph.downstream(0)
    assert (d.task, d.ndeps, d.worker, d.held) == (1, 1, None, True)
    with pytest.raises(AttributeError):
        o.retries = 3  # type: ignore[misc]
    assert "timeout_s=1.5" in repr(o) and "ndeps=1" in repr(d)
