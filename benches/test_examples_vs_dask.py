"""The example workflows end to end: shoal against Dask, same task functions, same graph shapes.

Each example in ``examples/`` builds its graph with a ``make`` argument that turns each plain task
function into a lazy one; ``shoal.task`` gives shoal's graph and ``dask.delayed`` Dask's, so both
engines run the same functions on the same graph. Three engines, on this machine, two workers
each:

* shoal: ``Session(backend=LocalProcesses(max_workers=2))`` on an embedded server, warm (worker
  processes started, functions cached by a first run of every graph);
* Dask threads: ``dask.compute(graph, scheduler="threads", num_workers=2)`` (in the client
  process: no serialization, one GIL);
* Dask distributed: ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)``, warm.

Every round builds a fresh graph for every engine (Dask distributed keeps the results of keys it
has computed) and the engines take turns within a round, so drifts in the machine's load hit all
three alike. Reported: the median makespan (graph handed over -> result in hand) of each engine
and the ratios shoal / Dask threads and shoal / Dask distributed (below 1: shoal is faster).
Every result is checked equal across engines; times are never asserted.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import shoal
from shoal.graph import freeze

from .conftest import EXAMPLES, _table, dask_cluster, shoal_processes

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

import chains
import fan_out
import gemm
import image_pipeline
import montage
import tree_reduction
import word_count

ROUNDS = 5
Make = Callable[[Callable[..., Any]], Any]

#: Each example at a mid size: (what, graph builder taking ``make``).
GRAPHS: dict[str, tuple[str, Callable[[Make], Any]]] = {
    "tree reduction": ("1,024 leaves", lambda make: tree_reduction.tree_sum(1024, make)),
    "fan-out": ("1 -> 1,000 -> 1", lambda make: fan_out.fan_out(1000, make)),
    "word count": ("40 x 5,000 words", lambda make: word_count.word_count(40, 5000, 5, make)),
    "gemm": ("8 x 8 blocks of 128", lambda make: gemm.gemm(8, 128, make)),
    "image pipeline": (
        "1,024^2 in 8 x 8 tiles",
        lambda make: image_pipeline.image_pipeline(8, 128, make),
    ),
    "montage": ("6 x 6 images of 128^2", lambda make: montage.montage(6, 128, make)),
    "chains": (
        "8 chains, 1-32 links of 5 ms",
        lambda make: chains.chains(chains.LENGTHS, 0.005, make),
    ),
}


def same(a: Any, b: Any) -> bool:
    """Equal results (arrays compared with NaNs equal, floats to rounding)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-12, equal_nan=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return bool(np.isclose(a, b, rtol=1e-12))
    return bool(a == b)


@pytest.fixture(scope="module")
def shoal_session() -> Iterator[shoal.Session]:
    with shoal_processes() as s:
        yield s


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    with dask_cluster(set_as_default=False) as client:
        yield client


@pytest.mark.parametrize("example", list(GRAPHS))
def test_example_vs_dask(
    benchmark: Any, example: str, shoal_session: shoal.Session, dask_client: Any
) -> None:
    from dask.base import compute
    from dask.delayed import delayed

    _, build = GRAPHS[example]

    def on_shoal(node: Any) -> Any:
        return shoal_session.compute(node)[0]

    def on_threads(node: Any) -> Any:
        return compute(node, scheduler="threads", num_workers=2)[0]

    def on_distributed(node: Any) -> Any:
        return dask_client.gather(dask_client.compute(node))

    engines: dict[str, tuple[Make, Callable[[Any], Any]]] = {
        "shoal": (shoal.task, on_shoal),
        "threads": (delayed, on_threads),
        "distributed": (delayed, on_distributed),
    }
    expected = None
    times: dict[str, list[float]] = {name: [] for name in engines}
    for r in range(ROUNDS + 1):  # round 0 warms every engine up and is not counted
        for name, (make, run) in engines.items():
            node = build(make)
            t = time.perf_counter()
            value = run(node)
            elapsed = time.perf_counter() - t
            if expected is None:
                expected = value
            assert same(value, expected), f"{example}: {name} disagrees"
            if r:
                times[name].append(elapsed)
    # pytest-benchmark's own record of the shoal side (fresh graph per round, built in setup).
    benchmark.pedantic(on_shoal, setup=lambda: ((build(shoal.task),), {}), rounds=3, iterations=1)
    EXAMPLES[example] = {
        "size": GRAPHS[example][0],
        "tasks": len(freeze([build(shoal.task)]).graph),
        **times,
    }


def examples_summary_lines() -> list[str]:
    header = [
        "example",
        "size",
        "tasks",
        "shoal",
        "dask threads",
        "dask distrib.",
        "shoal/threads",
        "shoal/distrib.",
    ]
    rows = []
    for name, r in EXAMPLES.items():
        med = {k: statistics.median(r[k]) for k in ("shoal", "threads", "distributed")}
        rows.append(
            [
                name,
                r["size"],
                f"{r['tasks']:,}",
                f"{med['shoal'] * 1e3:.0f} ms",
                f"{med['threads'] * 1e3:.0f} ms",
                f"{med['distributed'] * 1e3:.0f} ms",
                f"{med['shoal'] / med['threads']:.2f}x",
                f"{med['shoal'] / med['distributed']:.2f}x",
            ]
        )
    return [
        *_table(rows, header),
        "",
        f"medians of {ROUNDS} rounds, fresh graphs, engines taking turns; makespan = graph",
        "handed over -> result in hand. shoal: 2 warm worker processes (LocalProcesses) on an",
        "embedded server; dask threads: scheduler='threads', num_workers=2, in the client",
        "process; dask distrib.: LocalCluster(n_workers=2, threads_per_worker=1, processes=True).",
        "ratio = shoal median / Dask median (below 1x: shoal is faster); never asserted.",
    ]
