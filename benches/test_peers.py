"""shoal against Ray and Dask distributed on the same graphs, in the same run (issue 14).

Graphs: a 1,024-leaf tree, a 1 -> 1,000 -> 1 fan and a chain of 1,000 tiny tasks, and a blocked
matrix multiply (16 x 16 blocks of 128 x 128, examples/gemm.py's tasks). Each engine runs two
single-threaded workers on this machine: shoal's ``LocalProcesses(2)`` on
an embedded server, Dask's ``LocalCluster(n_workers=2, threads_per_worker=1)``, Ray's
``ray.init(num_cpus=2)``. Every round builds a fresh graph for each engine, and the engines take
turns (the order rotates each round), so a busy machine slows them alike; each timed run starts
:data:`SETTLE_S` after the previous one ended, so one engine's clean-up is not timed in the
next. Each time runs from building the graph to the result in hand: Ray starts a task as soon as
its call is made, so timing from the end of the building would leave part of its work out (the
session 6 figures did: Ray's were too low). Reported: the median
of :data:`ROUNDS` rounds after a warm-up, and the ratios shoal / Ray and shoal / Dask.

Ray binds the host's network address, so run this inside a network namespace that has only
loopback (``make bench-peers`` does). An engine that is not installed is left out (Ray and Dask
are the ``bench`` extra). Printed, never asserted.
"""

from __future__ import annotations

import importlib.util
import math
import socket
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import shoal
from shoal.backends.local import LocalProcesses

from .test_runtime_vs_dask import add, leaf, scale, total  # the same task functions

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
import gemm as gemm_example

ROUNDS = 5
#: Pause before each timed run: an engine tidies up after a run (Ray frees its objects, Dask
#: releases its keys) and on two cores that work would land in the next engine's time.
SETTLE_S = 0.5
SIZE = 1000

Make = Callable[[Callable[..., Any]], Callable[..., Any]]


def tree(make: Make) -> Any:
    lf, ad = make(leaf), make(add)
    level = [lf(i) for i in range(1024)]
    while len(level) > 1:
        level = [ad(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def fan(make: Make) -> Any:
    lf, sc, tot = make(leaf), make(scale), make(total)
    root = lf(3)
    return tot([sc(root, k) for k in range(SIZE)])


def chain(make: Make) -> Any:
    lf, ad = make(leaf), make(add)
    node = lf(1)
    for i in range(SIZE - 1):
        node = ad(node, i)
    return node


#: GEMM: 16 x 16 blocks of 128 x 128 (examples/gemm.py's tasks).
BLOCKS, BLOCK = 16, 128


def stack(blocks: list[Any]) -> Any:
    """The blocks of C, row by row, as one matrix (one flat list: Ray passes refs in it)."""
    n = math.isqrt(len(blocks))
    return np.block([blocks[i * n : (i + 1) * n] for i in range(n)])


def gemm(make: Make) -> Any:
    mb, mm, ad, st = (
        make(f) for f in (gemm_example.make_block.func, gemm_example.matmul.func,
                          gemm_example.add.func, stack)
    )  # fmt: skip
    n = BLOCKS
    a = [[mb(0, i, k, BLOCK) for k in range(n)] for i in range(n)]
    b = [[mb(1, k, j, BLOCK) for j in range(n)] for k in range(n)]
    c = [
        gemm_example.tree_sum([mm(a[i][k], b[k][j]) for k in range(n)], ad)
        for i in range(n)
        for j in range(n)
    ]
    return st(c)


def _gemm_expected() -> Any:
    def whole(m: int) -> Any:
        blocks = [[gemm_example.make_block.func(m, i, j, BLOCK) for j in range(BLOCKS)]
                  for i in range(BLOCKS)]  # fmt: skip
        return np.block(blocks)

    return whole(0) @ whole(1)


GRAPHS: dict[str, Callable[[Make], Any]] = {
    "tree-1024": tree,
    "fan-1000": fan,
    "chain-1000": chain,
    "gemm-16": gemm,
}
EXPECTED = {
    "tree-1024": sum(leaf(i) for i in range(1024)),
    "fan-1000": sum(leaf(3) * k for k in range(SIZE)),
    "chain-1000": leaf(1) + sum(range(SIZE - 1)),
    "gemm-16": _gemm_expected(),
}


def same(got: Any, expected: Any) -> bool:
    if isinstance(expected, np.ndarray):
        return bool(np.allclose(got, expected, rtol=1e-9))
    return bool(got == expected)


class Engine:
    name: str

    def make(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        raise NotImplementedError

    def run(self, graph: Any) -> Any:
        raise NotImplementedError


class Shoal(Engine):
    name = "shoal"

    def __init__(self) -> None:
        self.session = shoal.Session(backend=LocalProcesses(max_workers=2), progress=False)

    def make(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return shoal.task(fn)

    def run(self, graph: Any) -> Any:
        return self.session.compute(graph)[0]


class DaskDistributed(Engine):
    name = "dask"

    def __init__(self) -> None:
        dask: Any = importlib.import_module("dask")
        distributed: Any = importlib.import_module("distributed")
        self._delayed = dask.delayed
        self.cluster: Any = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
        self.client: Any = distributed.Client(self.cluster)

    def make(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        made: Callable[..., Any] = self._delayed(fn, pure=False)
        return made

    def run(self, graph: Any) -> Any:
        return graph.compute()


class Ray(Engine):
    name = "ray"

    def __init__(self) -> None:
        self.ray: Any = importlib.import_module("ray")
        self.ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)

    def make(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        plain = self.ray.remote(fn)
        # Ray resolves refs at the top level of the arguments only: a fan-in takes its list
        # spread out, as a Ray user writes it.
        spread = self.ray.remote(lambda *xs: fn(list(xs)))

        def call(*args: Any) -> Any:
            if len(args) == 1 and isinstance(args[0], list):
                return spread.remote(*args[0])
            return plain.remote(*args)

        return call

    def run(self, graph: Any) -> Any:
        return self.ray.get(graph)


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _loopback_only() -> bool:
    """In a network namespace with only ``lo``: Ray can bind nothing but 127.0.0.1."""
    return [name for _, name in socket.if_nameindex()] == ["lo"]


@pytest.fixture(scope="module")
def engines() -> Iterator[list[Engine]]:
    made: list[Engine] = [Shoal()]
    if _available("distributed"):
        made.append(DaskDistributed())
    if _available("ray") and _loopback_only():
        made.append(Ray())
    elif _available("ray"):
        print(
            "\nRay left out: it binds the host's address; `make bench-peers` runs it in a namespace"
        )
    try:
        yield made
    finally:
        for e in made:
            if isinstance(e, Shoal):
                e.session.close()
            elif isinstance(e, DaskDistributed):
                e.client.close()
                e.cluster.close()
            elif isinstance(e, Ray):
                e.ray.shutdown()


@pytest.mark.timeout(900)
def test_shoal_against_ray_and_dask(engines: list[Engine]) -> None:
    times: dict[tuple[str, str], list[float]] = {}
    for graph_name, build in GRAPHS.items():
        for e in engines:  # warm-up: processes started, functions cached
            assert same(e.run(build(e.make)), EXPECTED[graph_name]), (e.name, graph_name)
        for r in range(ROUNDS):
            for e in engines[r % len(engines) :] + engines[: r % len(engines)]:
                time.sleep(SETTLE_S)  # the previous engine's clean-up is not timed in this one
                # Timed from the graph's building: Ray starts each task as its call is made.
                began = time.perf_counter()
                got = e.run(build(e.make))
                times.setdefault((graph_name, e.name), []).append(time.perf_counter() - began)
                assert same(got, EXPECTED[graph_name]), (e.name, graph_name)
    names = [e.name for e in engines]
    print(f"\nmedian of {ROUNDS} rounds, engines interleaved (ms)")
    head = f"{'graph':<12}" + "".join(f"{n:>10}" for n in names)
    ratios = [n for n in ("ray", "dask") if n in names]
    print(head + "".join(f"{'shoal/' + n:>14}" for n in ratios))
    for graph_name in GRAPHS:
        med = {n: statistics.median(times[(graph_name, n)]) for n in names}
        row = f"{graph_name:<12}" + "".join(f"{med[n] * 1000:>10.0f}" for n in names)
        row += "".join(f"{med['shoal'] / med[n]:>13.2f}x" for n in ratios)
        print(row)
