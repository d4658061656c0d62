"""Chains: 8 independent chains of 1 to 32 links, each link a fixed 5 ms of work, joined by one
final task. The makespan is set by the longest chain; the others can share the spare workers
(a workload for planners: which chains share a worker, and how many workers to use).

Each link sleeps for its duration and adds 1 to its input, so chain c of length L ends at
100 * c + L.

Run it:  shoal run examples/chains.py [--small]
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import shoal

LENGTHS = (1, 2, 4, 8, 12, 16, 24, 32)
SMALL_LENGTHS = (1, 2, 4, 8)


@shoal.task
def link(x: int, seconds: float) -> int:
    """One link: a fixed amount of (sleeping) work, then the input plus one."""
    time.sleep(seconds)
    return x + 1


@shoal.task
def join(ends: list[int]) -> list[int]:
    return list(ends)


def chains(
    lengths: tuple[int, ...],
    seconds: float,
    make: Callable[[Callable[..., Any]], Any] = shoal.task,
) -> Any:
    """The graph: chain c has lengths[c] links starting from 100 * c. ``make`` turns each plain
    function (``task.func``) into a lazy one: ``shoal.task`` here; the benchmarks also pass
    ``dask.delayed``, for the same graph on Dask."""
    link_, join_ = make(link.func), make(join.func)
    ends = []
    for c, length in enumerate(lengths):
        node = link_(100 * c, seconds)
        for _ in range(length - 1):
            node = link_(node, seconds)
        ends.append(node)
    return join_(ends)


def main() -> None:
    lengths, seconds = (SMALL_LENGTHS, 0.002) if "--small" in sys.argv else (LENGTHS, 0.005)
    graph = chains(lengths, seconds)
    start = time.perf_counter()
    ends = graph.compute()
    elapsed = time.perf_counter() - start
    expected = [100 * c + length for c, length in enumerate(lengths)]
    tasks = sum(lengths) + 1
    print(f"chains of lengths {list(lengths)} ({tasks} tasks): ends {json.dumps(ends)}")
    longest, total = max(lengths) * seconds, sum(lengths) * seconds
    print(f"work: {longest:.2f} s in the longest chain, {total:.2f} s in all")
    print(f"computed in {elapsed:.2f} s")
    if ends != expected:
        raise SystemExit(f"wrong result: expected {json.dumps(expected)}")


if __name__ == "__main__":
    main()
