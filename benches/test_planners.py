"""Planners against WUKONG's schedule: every example, the same bench run, engines in turn.

Per example, three warm sessions (LocalProcesses, 2 slots), one per engine:

- ``wukong``: ``planner="wukong"`` (one task per new worker; no history needed);
- ``default``: the default planner with no history at all (``metrics_url="off"``: every run
  is planned by structure alone);
- ``uniform``: ``planner="uniform"`` on a history of its own (a directory store), after
  ``HISTORY`` runs that fill it.

Then ``ROUNDS`` rounds, each running every engine once, in turn. Reported: the median
makespan of each (RUN_SUBMITTED to RUN_COMPLETED, from the run's record), the speed-ups
over ``wukong``, and the median |predicted - actual| / actual of each planner's makespan.
Times are printed, never asserted.

Run:  .venv/bin/pytest benches/test_planners.py -q -s -p no:cacheprovider
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import shoal
from shoal.backends import LocalProcesses
from shoal.events import decode
from shoal.metrics.records import run_record
from shoal.planners import NonUniform, Uniform

from .conftest import _table
from .test_predictions import EXAMPLES

HISTORY = 3
ROUNDS = 5
ENGINES = ("wukong", "default", "uniform")

RESULTS: dict[str, dict[str, Any]] = {}


def measured(s: shoal.Session, node: Any, planner: str) -> tuple[float, float | None]:
    """One run: (its makespan, what its plan predicted)."""
    run = s.submit(node, planner=planner)
    run.result(timeout=600)
    entries = s._run(s.storage.events_range(run.id))
    summary = run_record(run.id, [decode(f, i) for i, f in entries]).summary
    assert summary.makespan_s is not None
    return summary.makespan_s, summary.predicted_makespan_s


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    if not RESULTS:
        return
    rows = []
    for name, r in RESULTS.items():
        w = r["wukong"]
        rows.append(
            [
                name,
                *(f"{r[e]:.3f}" for e in ENGINES),
                f"{w / r['default']:.2f}",
                f"{w / r['uniform']:.2f}",
                *(f"{r['err_' + e]:.1%}" for e in ENGINES),
            ]
        )
    header = [
        "example",
        *(f"{e} s" for e in ENGINES),
        "wukong/default",
        "wukong/uniform",
        *(f"{e} err" for e in ENGINES),
    ]
    print()
    print(f"planners, LocalProcesses(2): median of {ROUNDS} rounds, engines in turn")
    for line in _table(rows, header):
        print(line)


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_planners_on_an_example(name: str) -> None:
    build: Callable[[], Any] = EXAMPLES[name]
    with tempfile.TemporaryDirectory(prefix="shoal-history-") as folder:
        sessions = {
            "wukong": shoal.Session(
                backend=LocalProcesses(max_workers=2), metrics_url="off", progress=False
            ),
            "default": shoal.Session(
                backend=LocalProcesses(max_workers=2), metrics_url="off", progress=False
            ),
            "uniform": shoal.Session(
                backend=LocalProcesses(max_workers=2),
                metrics_url=f"file://{folder}",
                progress=False,
            ),
        }
        try:
            for engine, s in sessions.items():
                s.compute(build(), planner=engine)  # warm processes, imports
            for _ in range(HISTORY):
                sessions["uniform"].compute(build(), planner="uniform")
            times: dict[str, list[float]] = {e: [] for e in ENGINES}
            errors: dict[str, list[float]] = {e: [] for e in ENGINES}
            for _ in range(ROUNDS):
                for engine in ENGINES:
                    actual, predicted = measured(sessions[engine], build(), engine)
                    times[engine].append(actual)
                    if predicted is not None:
                        errors[engine].append(abs(predicted - actual) / actual)
        finally:
            for s in sessions.values():
                s.close()
    RESULTS[name] = {e: statistics.median(times[e]) for e in ENGINES}
    for e in ENGINES:
        RESULTS[name]["err_" + e] = statistics.median(errors[e]) if errors[e] else float("nan")


@pytest.mark.parametrize("width", [10_000])
def test_planning_a_large_graph(width: int) -> None:
    """Predictions + plan + simulation of a 10,000-task graph, timed (printed, not asserted)."""
    import time

    from shoal.graph import freeze
    from shoal.metrics.history import HistoryView
    from shoal.planners import Default, Problem, Uniform, Wukong, planned
    from shoal.planning.forecast import identities
    from shoal.planning.simulate import Platform

    sys_path_examples()
    import fan_out
    import tree_reduction

    rows = []
    for label, node in (
        (f"fan-out {width:,}", fan_out.fan_out(width - 2)),
        ("tree 8,191", tree_reduction.tree_sum(4096)),
    ):
        frozen = freeze([node])
        ident = identities(frozen)
        for planner in (Wukong(), Default(), Uniform()):
            began = time.perf_counter()
            problem = Problem(frozen.graph, ident, HistoryView(), Platform(slots=2))
            plan = planned(problem, planner)
            took = time.perf_counter() - began
            assert plan.predicted is not None
            rows.append([label, str(len(frozen.graph)), planner.name, f"{took:.3f}"])
    print()
    print("planning time: predictions + plan + simulation (no history: defaults)")
    for line in _table(rows, ["graph", "tasks", "planner", "seconds"]):
        print(line)


def sys_path_examples() -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))


NONUNIFORM_SIZES = [442, 885, 1769, 3538]


def test_nonuniform_against_uniform_with_cpu_shares() -> None:
    """``examples/critical_path.py`` with CPU shares enforced: ``Uniform`` at the largest
    size against ``NonUniform`` over four sizes, after 3 runs of history at several sizes;
    5 rounds in turn, medians of makespan and GB-seconds (lifetime) from each run's record."""
    sys_path_examples()
    import critical_path

    backend = LocalProcesses(max_workers=2)
    if not backend.enforces_cpu:
        pytest.skip("CPU shares cannot be enforced here (no writable cgroup cpu controller)")
    uniform = Uniform(memory_mb=NONUNIFORM_SIZES[-1])
    nonuniform = NonUniform(sizes=NONUNIFORM_SIZES)
    found: dict[str, list[tuple[float, float, float | None]]] = {"u": [], "n": []}
    with (
        tempfile.TemporaryDirectory(prefix="shoal-history-") as folder,
        shoal.Session(backend=backend, metrics_url=f"file://{folder}", progress=False) as s,
    ):
        for mb in NONUNIFORM_SIZES:  # history at every size
            s.compute(critical_path.critical_path(), planner=Uniform(memory_mb=mb))
        for _ in range(ROUNDS):
            for key, planner in (("u", uniform), ("n", nonuniform)):
                run = s.submit(critical_path.critical_path(), planner=planner)
                assert run.result(timeout=600) == (critical_path.reference(),)
                entries = s._run(s.storage.events_range(run.id))
                summary = run_record(run.id, [decode(f, i) for i, f in entries]).summary
                assert summary.makespan_s is not None
                found[key].append((summary.makespan_s, summary.gb_s, summary.predicted_makespan_s))
    rows = []
    for key, label in (("u", "uniform(3538)"), ("n", f"nonuniform({NONUNIFORM_SIZES})")):
        ms = statistics.median(x[0] for x in found[key])
        gb = statistics.median(x[1] for x in found[key])
        err = statistics.median(abs((x[2] or 0) - x[0]) / x[0] for x in found[key])
        rows.append([label, f"{ms:.3f}", f"{gb:.3f}", f"{err:.1%}"])
    u_ms = statistics.median(x[0] for x in found["u"])
    u_gb = statistics.median(x[1] for x in found["u"])
    n_ms = statistics.median(x[0] for x in found["n"])
    n_gb = statistics.median(x[1] for x in found["n"])
    print()
    print(f"critical path, CPU shares enforced, LocalProcesses(2): medians of {ROUNDS} rounds")
    for line in _table(rows, ["planner", "makespan s", "GB-s", "pred err"]):
        print(line)
    print(f"nonuniform/uniform: makespan {n_ms / u_ms:.3f}, GB-s {n_gb / u_gb:.3f}")
