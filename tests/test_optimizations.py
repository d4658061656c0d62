"""Optimizations acting in a real run (worker processes on the test server): the result is the
reference's, the tasks they acted on say so in their events and metric records, and the
simulation of the same plan places tasks as the run did."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import shoal
from shoal.backends import LocalProcesses
from shoal.events import TaskCompleted, decode
from shoal.graph import freeze
from shoal.metrics.records import run_record
from shoal.optimizations import Cluster
from shoal.planning import Plan, TaskPlan

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

import fan_out

WIDTH = 12


def clustered(node: Any) -> Plan:
    g = freeze([node]).graph
    [seed] = [t for t in g.task_ids() if g.fn_name(t).endswith("make_seed")]
    return Plan({seed: TaskPlan(None, None, [Cluster()])})


def run(redis_url: str, plan: Plan) -> tuple[Any, list[TaskCompleted], Any, Plan]:
    node = fan_out.fan_out(WIDTH)
    with shoal.Session(
        redis_url=redis_url, backend=LocalProcesses(max_workers=2), progress=False
    ) as s:
        simulated = s.simulate(node, plan=plan)
        r = s.submit(node, plan=plan)
        (value,) = r.result(timeout=120)
        entries = s._run(s.storage.events_range(r.id))
    events = [decode(f, i) for i, f in entries]
    done = [e for e in events if isinstance(e, TaskCompleted)]
    return value, done, run_record(r.id, events), simulated


def test_cluster_keeps_a_fan_out_on_its_sources_worker_and_records_that_it_acted(
    redis_url: str,
) -> None:
    node = fan_out.fan_out(WIDTH)
    value, done, record, simulated = run(redis_url, clustered(node))
    assert value == fan_out.reference(WIDTH)
    work = [e for e in done if e.name == "work"]
    assert len(work) == WIDTH
    assert all(e.optimizations == ("cluster",) for e in work)
    assert {e.worker for e in work} == {next(e.worker for e in done if e.name == "make_seed")}
    assert [e.optimizations for e in done if e.name != "work"] == [(), ()]
    samples = [s for s in record.samples if s.fn.endswith("work")]
    assert len(samples) == WIDTH and all(s.optimizations == ("cluster",) for s in samples)
    assert all(s.input_bytes == 0 for s in samples)  # the seed was local: nothing fetched
    # The simulation decides as the runtime: one worker for the whole graph.
    assert simulated.predicted is not None and len(simulated.predicted.workers) == 1
    assert record.summary.cold_starts + record.summary.warm_starts == 1


def test_without_it_the_same_fan_out_is_shared_and_nothing_says_it_acted(
    redis_url: str,
) -> None:
    value, done, record, simulated = run(redis_url, Plan())  # all flexible, no planner
    assert value == fan_out.reference(WIDTH)
    assert all(e.optimizations == () for e in done)
    assert all(s.optimizations == () for s in record.samples)
    assert len({e.worker for e in done if e.name == "work"}) > 1
    assert simulated.predicted is not None and len(simulated.predicted.workers) > 1
