"""How fast a plan is simulated, and how many round trips reading its history takes.

Graphs of 10,000 and 16,383 tasks, with history for their functions in a Redis store (a real
server): the history read is counted in round trips (each a pipeline), the point simulation
and the 32-draw Monte-Carlo timed (median of 5). Times are printed, never asserted.

Run:  .venv/bin/pytest benches/test_simulation_speed.py -q -s -p no:cacheprovider
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import shoal
from shoal.backends import LocalProcesses
from shoal.graph import freeze
from shoal.metrics.history import History
from shoal.metrics.stores import RedisHistoryStore
from shoal.planning.forecast import forecast, identities, load_predictions
from shoal.planning.simulate import Platform, simulate
from shoal.server import EmbeddedServer

from .conftest import _table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

import fan_out
import tree_reduction

GRAPHS: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
    # (the graph timed, a small one of the same functions that builds the history)
    "fan-out 10,000 tasks": (lambda: fan_out.fan_out(9998), lambda: fan_out.fan_out(50)),
    "tree 16,383 tasks": (
        lambda: tree_reduction.tree_sum(8192),
        lambda: tree_reduction.tree_sum(64),
    ),
}
RESULTS: dict[str, dict[str, Any]] = {}


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    if not RESULTS:
        return
    header = ["graph", "tasks", "history round trips", "simulate s", "+32 draws s"]
    rows = [
        [
            name,
            f"{r['tasks']:,}",
            str(r["round_trips"]),
            f"{r['point']:.3f}",
            f"{r['mc']:.3f}",
        ]
        for name, r in RESULTS.items()
    ]
    print()
    print("simulation speed (2 slots), history read from a Redis store")
    for line in _table(rows, header):
        print(line)


@pytest.mark.parametrize("name", list(GRAPHS))
def test_simulation_speed(name: str) -> None:
    big, small = GRAPHS[name]
    with EmbeddedServer() as server:
        with shoal.Session(
            redis_url=server.url,
            backend=LocalProcesses(max_workers=2),
            metrics_url=server.url,
            progress=False,
        ) as s:
            for _ in range(3):
                s.compute(small())
        frozen = freeze([big()])
        ident = identities(frozen)

        async def read() -> tuple[Any, int]:
            store = RedisHistoryStore.from_url(server.url)
            try:
                preds = await load_predictions(frozen.graph, ident, History(store), "average")
                return preds, store.round_trips
            finally:
                await store.close()

        predictions, round_trips = asyncio.run(read())
    assert predictions.functions, "the history has the graph's functions"
    platform = Platform(slots=2)
    points, mcs = [], []
    for _ in range(5):
        began = time.perf_counter()
        simulate(frozen.graph, predictions, platform, ident)
        points.append(time.perf_counter() - began)
        began = time.perf_counter()
        forecast(frozen.graph, ident, predictions, platform, samples=32, budget_s=60)
        mcs.append(time.perf_counter() - began)
    RESULTS[name] = {
        "tasks": len(frozen.graph),
        "round_trips": round_trips,
        "point": statistics.median(points),
        "mc": statistics.median(mcs),
    }
