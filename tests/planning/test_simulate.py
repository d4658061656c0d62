"""The plan simulation: its makespan against the critical path, on random graphs and plans."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import shoal
from shoal.graph import freeze
from shoal.optimizations import Cluster
from shoal.planning import Plan, TaskPlan
from shoal.planning.simulate import Platform, critical_path, simulate
from test_random_dags import dags


@dataclass
class Fixed:
    """Quantities with a given execution time per task and every overhead fixed."""

    exec_by_task: dict[str, float]
    latency: float = 0.0
    start: float = 0.0
    calls: list[str] = field(default_factory=list)
    #: What the simulation said acted on each task it asked about.
    acted: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def exec_s(
        self,
        fn: str,
        code: str,
        input_bytes: float,
        cpu: float | None = None,
        acted: tuple[str, ...] = (),
    ) -> float:
        self.acted[code] = acted
        return self.exec_by_task[code]

    def output_bytes(self, fn: str, code: str, input_bytes: float) -> float:
        return 8.0

    def prep_s(self, fetched_bytes: float, cold: bool = False) -> float:
        return self.latency

    def first_call_s(self, fn: str, code: str) -> float:
        return 0.0

    def gap_s(self, fetched_bytes: float) -> float:
        return self.latency

    def store_s(self, output_bytes: float) -> float:
        return self.latency

    def start_s(self, kind: str, overlap: int = 0) -> float:
        self.calls.append(kind)
        return self.start

    def dispatch_s(self) -> float:
        return 0.0


def _setup(outs: list[shoal.Node[Any]], durations: list[float], plan: Plan | None = None) -> Any:
    frozen = freeze(outs).with_plan(plan)
    g = frozen.graph
    ids = g.task_ids()
    q = Fixed({str(t): durations[i % len(durations)] for i, t in enumerate(ids)})
    return g, q, (lambda t: ("f", str(t)))


durations = st.lists(st.floats(0.001, 1.0), min_size=1, max_size=8)


@given(dags(), durations)
def test_all_flexible_with_no_latency_and_no_bound_takes_the_critical_path(
    outs: list[shoal.Node[Any]], ds: list[float]
) -> None:
    g, q, ident = _setup(outs, ds)
    sim = simulate(g, q, Platform(slots=None), ident)
    exec_s = {t: q.exec_by_task[str(t)] for t in g.task_ids()}
    _, total = critical_path(g, exec_s)
    assert sim.makespan_s == pytest.approx(total, rel=1e-9, abs=1e-12)
    assert set(sim.tasks) == set(g.task_ids())


@given(dags(), durations, st.integers(1, 3), st.data())
def test_no_plan_runs_faster_than_its_critical_path(
    outs: list[shoal.Node[Any]], ds: list[float], slots: int, data: st.DataObject
) -> None:
    ids = freeze(outs).graph.task_ids()
    pins = data.draw(st.dictionaries(st.sampled_from(ids), st.integers(0, 2)))
    g, q, ident = _setup(outs, ds, Plan.pinned(pins))
    latency = data.draw(st.floats(0.0, 0.01))
    q.latency = latency
    sim = simulate(g, q, Platform(slots=slots), ident)
    exec_s = {t: q.exec_by_task[str(t)] for t in g.task_ids()}
    _, total = critical_path(g, exec_s)
    assert sim.makespan_s >= total * (1 - 1e-9)
    # Every task ran once, after each of its inputs was recorded.
    assert set(sim.tasks) == set(ids)
    for t in ids:
        for d in g.deps(t):
            assert sim.tasks[t].start >= sim.tasks[d].done - 1e-9 or (
                sim.tasks[t].worker == sim.tasks[d].worker
                and sim.tasks[t].start >= sim.tasks[d].end - 1e-9
            )
    if pins:
        return  # a parked pinned worker gives its slot up: the count below is for the rest
    # No more workers at once than the platform's slots.
    edges = sorted(
        [(w.start, 1) for w in sim.workers.values()] + [(w.end, -1) for w in sim.workers.values()],
        key=lambda e: (e[0], e[1]),
    )
    live = peak = 0
    for _, step in edges:
        live += step
        peak = max(peak, live)
    assert peak <= slots


def test_one_slot_runs_a_fan_out_one_task_after_another() -> None:
    @shoal.task
    def leaf(i: int) -> int:
        return i

    @shoal.task
    def total(*xs: int) -> int:
        return sum(xs)

    node = total(*[leaf(i) for i in range(8)])
    g, q, ident = _setup([node], [0.1])
    sim = simulate(g, q, Platform(slots=1), ident)
    assert sim.makespan_s == pytest.approx(0.9)  # nine tasks of 0.1 s, one at a time
    q2 = Fixed(q.exec_by_task, start=0.05)
    sim2 = simulate(g, q2, Platform(slots=1, warm=0), ident)
    assert q2.calls[0] == "cold" and sim2.cold_starts == 1
    assert sim2.makespan_s == pytest.approx(0.9 + 0.05 * len(sim2.workers))


def test_a_clustered_fan_out_is_simulated_on_the_worker_that_ran_its_source() -> None:
    @shoal.task
    def leaf(seed: int, i: int) -> int:
        return seed + i

    @shoal.task
    def total(*xs: int) -> int:
        return sum(xs)

    seed = leaf(0, 0)
    node = total(*[leaf(seed, i) for i in range(6)])
    g, q, ident = _setup([node], [0.1])
    plain = simulate(g, q, Platform(slots=3), ident)
    # Without it: the fan-out goes to other workers, three at a time.
    assert len(plain.workers) > 1 and plain.makespan_s == pytest.approx(0.4)
    g, q, ident = _setup([node], [0.1], Plan({0: TaskPlan(None, None, [Cluster()])}))
    sim = simulate(g, q, Platform(slots=3), ident)
    assert len(sim.workers) == 1
    assert len({times.worker for times in sim.tasks.values()}) == 1
    # Predictions are asked with what acted: the kept fan-out, not its source or the fan-in.
    assert q.acted == {str(t): ("cluster",) if 1 <= t <= 6 else () for t in range(8)}
    assert sim.makespan_s == pytest.approx(0.8)  # eight tasks of 0.1 s, one after another


def test_a_pinned_chain_waits_on_its_inbox_and_gives_its_slot_up() -> None:
    @shoal.task
    def step(x: int) -> int:
        return x + 1

    a = step(0)
    b = step(a)
    c = step(b)
    frozen = freeze([c])
    ids = frozen.graph.task_ids()
    # a and c on worker 1, b on worker 2: worker 1 parks while b runs.
    g, q, ident = _setup([c], [0.2], Plan.pinned({ids[0]: 1, ids[1]: 2, ids[2]: 1}))
    sim = simulate(g, q, Platform(slots=1), ident)  # one slot: w1 parks, w2 runs b
    assert sim.makespan_s == pytest.approx(0.6)
    assert sim.tasks[ids[2]].worker == sim.tasks[ids[0]].worker == "w1"
    assert sim.workers["w1"].end == pytest.approx(0.6) and sim.workers["w1"].tasks == 2


@shoal.task
def items(n: int) -> list[int]:
    return list(range(n))


@shoal.task
def grow(x: int) -> int:
    return x + 1


@shoal.task
def summed(xs: list[int]) -> int:
    return sum(xs)


@pytest.mark.parametrize("width", [0, 1, 7])
def test_a_map_chain_expands_to_its_recorded_width(width: int) -> None:
    node = summed(shoal.map(grow, shoal.map(grow, items(width))))
    frozen = freeze([node])
    g = frozen.graph
    q = Fixed({}, latency=0.001)
    q.exec_by_task = _ExecOf(0.1)
    names = {g.name(t) for t in g.task_ids()}
    root = next(n for n in names if n.startswith("grow"))
    sim = simulate(g, q, Platform(slots=2), lambda t: ("f", str(t)), widths={root: width})
    elements = [t for t in sim.tasks if t >= 2**32]
    assert len(elements) == 2 * width  # two maps of the chain, ``width`` elements each
    exec_s = {t: x.exec_s for t, x in sim.tasks.items()}
    _, total = critical_path(g, exec_s)
    assert sim.makespan_s >= total
    # Without a recorded width a chain is simulated at width 1.
    default = simulate(g, q, Platform(slots=2), lambda t: ("f", str(t)))
    assert len([t for t in default.tasks if t >= 2**32]) == 2


class _ExecOf(dict[str, float]):
    """Every task takes ``seconds``."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def __missing__(self, key: str) -> float:
        return self.seconds
