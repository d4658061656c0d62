"""A quick end-to-end timing of a 1,024-leaf tree and a 1,000-task chain on LocalProcesses (two
workers, embedded server): the median of 7 runs after a warm-up, each on a fresh graph. Used for
A/B runs of the runtime (see docs/benchmarks.md); run it as a script:
``python benches/tree_bench.py``."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import shoal
from shoal.backends import LocalProcesses


@shoal.task
def leaf(i: int) -> int:
    return i


@shoal.task
def add(a: int, b: int) -> int:
    return a + b


def tree(n: int) -> shoal.Node[int]:
    level = [leaf(i) for i in range(n)]
    while len(level) > 1:
        level = [add(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def chain(n: int) -> shoal.Node[int]:
    x = leaf(0)
    for _ in range(n - 1):
        x = add(x, 1)
    return x


GRAPHS: dict[str, Callable[[], shoal.Node[int]]] = {
    "tree-1024": lambda: tree(1024),
    "chain-1000": lambda: chain(1000),
}


def main() -> None:
    with shoal.Session(backend=LocalProcesses(max_workers=2), progress=False) as s:
        for name, build in GRAPHS.items():
            s.compute(build())  # warm-up
            times = []
            for _ in range(7):
                graph = build()
                began = time.perf_counter()
                s.compute(graph)
                times.append(time.perf_counter() - began)
            runs = ", ".join(f"{t * 1000:.0f}" for t in times)
            print(f"{name}: median {statistics.median(times) * 1000:.0f} ms  ({runs})")


if __name__ == "__main__":
    main()
