"""Random DAGs (hypothesis) on every in-process scheduler, against the reference evaluator."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shoal
from reference import evaluate


@shoal.task
def mix(seed: int, *ups: Any, **kw: Any) -> int:
    """A deterministic, order-sensitive combination of its inputs."""
    acc = seed
    for u in ups:
        acc = (acc * 31 + u) % 1_000_003
    for k in sorted(kw):
        acc = (acc * 17 + kw[k] + len(k)) % 1_000_003
    return acc


@st.composite
def dags(draw: st.DrawFn, max_tasks: int = 40) -> list[shoal.Node[Any]]:
    n = draw(st.integers(1, max_tasks))
    nodes: list[shoal.Node[Any]] = []
    for i in range(n):
        ups = draw(st.lists(st.integers(0, i - 1), max_size=4)) if i else []
        kw = draw(st.lists(st.integers(0, i - 1), max_size=2)) if i else []
        nodes.append(
            mix(i, *[nodes[u] for u in ups], **{f"k{j}": nodes[u] for j, u in enumerate(kw)})
        )
    outs = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=4))
    return [nodes[o] for o in outs]


@given(dags())
def test_random_dag_sync(outs: list[shoal.Node[Any]]) -> None:
    assert shoal.compute(*outs, scheduler="sync") == evaluate(*outs)


@settings(max_examples=15)
@given(dags())
def test_random_dag_threads(outs: list[shoal.Node[Any]]) -> None:
    assert shoal.compute(*outs, scheduler="threads") == evaluate(*outs)


@given(dags(), st.data())
def test_random_dag_with_random_pinning(outs: list[shoal.Node[Any]], data: st.DataObject) -> None:
    """Any assignment of tasks to workers (inbox path, mixed pinned/flexible): same result."""
    from shoal.graph import freeze

    n = len(freeze(outs).graph)
    workers = data.draw(st.integers(1, 4))
    assignment = {t: w for t in range(n) if (w := data.draw(st.integers(-1, workers - 1))) >= 0}
    assert shoal.compute(*outs, scheduler="sync", plan=assignment) == evaluate(*outs)


def test_deep_chain_has_no_recursion_error(scheduler: str) -> None:
    n = mix(0)
    for i in range(3000):
        n = mix(i, n)
    assert n.compute(scheduler=scheduler) == evaluate(n)[0]
    n.visualize()


@pytest.mark.slow
def test_wide_fan_out_and_in(scheduler: str) -> None:
    src = mix(1)
    mids = [mix(i, src) for i in range(5000)]
    out = mix(0, *mids)
    assert out.compute(scheduler=scheduler) == evaluate(out)[0]


def test_explicit_assignment_everything_on_two_workers() -> None:
    leaves = [mix(i) for i in range(16)]
    level = leaves
    while len(level) > 1:
        level = [mix(0, level[i], level[i + 1]) for i in range(0, len(level), 2)]
    from shoal.graph import freeze

    n = len(freeze(level).graph)
    assignment = {t: t % 2 for t in range(n)}
    assert shoal.compute(*level, scheduler="sync", plan=assignment) == evaluate(*level)


def test_assignment_with_unknown_task_is_an_error() -> None:
    with pytest.raises(shoal.GraphError, match="task 99 is not in the graph"):
        shoal.compute(mix(1), scheduler="sync", plan={99: 0})


def test_assignment_with_bad_types_is_an_error() -> None:
    with pytest.raises(TypeError, match="worker id must be an int"):
        shoal.compute(mix(1), scheduler="sync", plan={0: "w1"})  # type: ignore[dict-item]


@given(dags(), st.data())
def test_random_dag_with_random_clustering(
    outs: list[shoal.Node[Any]], data: st.DataObject
) -> None:
    """Clustering any tasks' fan-outs, with any limit, among random pins: same result."""
    from shoal.graph import freeze
    from shoal.optimizations import Cluster
    from shoal.planning import Plan, TaskPlan

    n = len(freeze(outs).graph)
    plan = {}
    for t in range(n):
        worker = data.draw(st.one_of(st.none(), st.integers(0, 2)))
        limit = data.draw(st.one_of(st.none(), st.integers(1, 3)))
        if worker is not None or data.draw(st.booleans()):
            plan[t] = TaskPlan(worker, None, [Cluster(limit)] if data.draw(st.booleans()) else [])
    scheduler = data.draw(st.sampled_from(["sync", "threads"]))
    assert shoal.compute(*outs, scheduler=scheduler, plan=Plan(plan)) == evaluate(*outs)
