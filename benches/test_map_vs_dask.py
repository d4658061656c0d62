"""Dynamic fan-out: ``shoal.map`` over a list produced at run time, against the same work with the
width known in advance (a static graph) and against Dask distributed's way of doing it.

The work: ``split(n)`` returns ``range(n)`` as a list; two element-wise steps run on every item;
``total`` sums them. Three ways, all on this machine with two single-threaded workers:

* shoal dynamic: ``total(shoal.map(step2, shoal.map(step1, split(n))))``, one submission;
* shoal static: ``total([step2(step1(i)) for i in range(n)])``, the width known when building;
* Dask distributed: futures, the documented way to fan out over a list known only at run time:
  ``client.submit(split)`` and wait for the list, then ``client.map(step1)``, ``client.map(step2)``
  and ``client.submit(total)`` (``pure=False``, so no round reuses another's results).

Reported: median and best end-to-end time of fresh graphs, and the ratios dynamic / static (the
cost of not knowing the width) and dynamic / Dask.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from typing import Any

import pytest

import shoal

from .conftest import MAPS, dask_cluster, shoal_processes

ROUNDS = 5
WIDTHS = [100, 1000]


def split(n: int) -> list[int]:
    return list(range(n))


def step1(x: int) -> int:
    return (x * 7919) % 1000


def step2(x: int) -> int:
    return x * 3 + 1


def total(xs: list[int]) -> int:
    return sum(xs)


def expected(n: int) -> int:
    return sum(step2(step1(i)) for i in range(n))


# The same functions as shoal tasks. These are called with lazy nodes where the functions take
# values, which a task function's parameter types cannot express: their parameters are left open.
T_SPLIT: shoal.TaskFunction[..., list[int]] = shoal.task(split)
T_STEP1: shoal.TaskFunction[..., int] = shoal.task(step1)
T_STEP2: shoal.TaskFunction[..., int] = shoal.task(step2)
T_TOTAL: shoal.TaskFunction[..., int] = shoal.task(total)


def dynamic(n: int) -> shoal.Node[Any]:
    return T_TOTAL(shoal.map(T_STEP2, shoal.map(T_STEP1, T_SPLIT(n))))


def static(n: int) -> shoal.Node[Any]:
    return T_TOTAL([T_STEP2(T_STEP1(i)) for i in range(n)])


@pytest.fixture(scope="module")
def session() -> Iterator[shoal.Session]:
    with shoal_processes() as s:
        s.compute(dynamic(200), static(200))  # warm: processes started, functions cached
        yield s


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    with dask_cluster() as client:
        dask_dynamic(client, 200)  # warm
        yield client


def dask_dynamic(client: Any, n: int) -> int:
    items = client.submit(split, n, pure=False).result()
    firsts = client.map(step1, items, pure=False)
    seconds = client.map(step2, firsts, pure=False)
    result: int = client.submit(total, seconds, pure=False).result()
    return result


def timed(run: Any, rounds: int = ROUNDS) -> list[float]:
    times: list[float] = []
    for _ in range(rounds):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return times


@pytest.mark.parametrize("n", WIDTHS)
def test_map_vs_static_and_dask(
    benchmark: Any, n: int, session: shoal.Session, dask_client: Any
) -> None:
    def run_dynamic() -> None:
        assert session.compute(dynamic(n))[0] == expected(n)

    def run_static() -> None:
        assert session.compute(static(n))[0] == expected(n)

    def run_dask() -> None:
        assert dask_dynamic(dask_client, n) == expected(n)

    MAPS[f"map-{n}"] = {
        "elements": 2 * n,
        "dynamic": timed(run_dynamic),
        "static": timed(run_static),
        "dask": timed(run_dask),
    }
    benchmark.pedantic(run_dynamic, rounds=3, iterations=1)


def maps_summary_lines() -> list[str]:
    lines = [
        f"{'graph':9} {'elements':>8} {'dynamic':>9} {'static':>9} {'dask':>9} "
        f"{'dyn/static':>10} {'dyn/dask':>9} {'extra/element':>13}",
    ]
    for name, r in MAPS.items():
        dyn, sta, dsk = (statistics.median(r[k]) for k in ("dynamic", "static", "dask"))
        extra_us = (dyn - sta) / r["elements"] * 1e6
        lines.append(
            f"{name:9} {r['elements']:>8} {dyn * 1e3:>7.0f}ms {sta * 1e3:>7.0f}ms "
            f"{dsk * 1e3:>7.0f}ms {dyn / sta:>9.2f}x {dyn / dsk:>8.2f}x {extra_us:>10.0f} us"
        )
    lines += [
        "",
        "dynamic  = shoal.map chain over split(n)'s list: one submission, no barrier",
        "static   = the same tasks with the width known when building the graph",
        "dask     = Dask distributed futures: wait for split's list, then client.map twice",
        "extra/element = (dynamic - static) / elements: what not knowing the width costs",
        "medians of fresh graphs; never asserted",
    ]
    return lines
