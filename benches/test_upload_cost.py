"""What each metrics upload strategy costs a run, as a ratio to no metrics at all.

One warm session per strategy (two worker processes each, one shared embedded server,
history recording off so that only the workers' side is measured); every round runs the same
graph once on each session in turn, so drifts in the machine's load hit every strategy alike.
Reported: the median makespan (graph built -> result in hand) per strategy and its ratio to
``off``. Times are printed, never asserted.

Run:  .venv/bin/pytest benches/test_upload_cost.py -q -s -p no:cacheprovider
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import shoal
from shoal.backends import LocalProcesses
from shoal.config import Settings
from shoal.server import EmbeddedServer

from .conftest import _table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

import chains
import tree_reduction

ROUNDS = 7
STRATEGIES = ("off", "task", "exit", "every:1", "count:100")
GRAPHS: dict[str, Callable[[], Any]] = {
    "tree-1024": lambda: tree_reduction.tree_sum(1024),
    "chains": lambda: chains.chains(chains.LENGTHS, 0.005),
}
RESULTS: dict[str, dict[str, float]] = {}


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    if not RESULTS:
        return
    header = ["graph", *(f"{s} ms" for s in STRATEGIES), *(f"{s}/off" for s in STRATEGIES[1:])]
    rows = []
    for name, r in RESULTS.items():
        ms = [f"{r[s] * 1e3:.1f}" for s in STRATEGIES]
        ratios = [f"{r[s] / r['off']:.3f}" for s in STRATEGIES[1:]]
        rows.append([name, *ms, *ratios])
    print()
    print(f"metrics upload strategies: median of {ROUNDS} rounds, 2 worker processes")
    for line in _table(rows, header):
        print(line)


@pytest.mark.parametrize("graph", list(GRAPHS))
def test_upload_strategy_costs(graph: str) -> None:
    build = GRAPHS[graph]
    expected = None
    with EmbeddedServer() as server:
        sessions = {
            s: shoal.Session(
                redis_url=server.url,
                backend=LocalProcesses(max_workers=2),
                settings=Settings(metrics=s),
                metrics_url="off",
                progress=False,
            )
            for s in STRATEGIES
        }
        try:
            for s in sessions.values():  # warm: processes started, functions cached
                expected = s.compute(build())
            times: dict[str, list[float]] = {s: [] for s in STRATEGIES}
            for _ in range(ROUNDS):
                for name, s in sessions.items():
                    began = time.perf_counter()
                    got = s.compute(build())
                    times[name].append(time.perf_counter() - began)
                    assert got == expected
        finally:
            for s in sessions.values():
                s.close()
    RESULTS[graph] = {s: statistics.median(v) for s, v in times.items()}
