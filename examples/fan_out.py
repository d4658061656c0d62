"""Fan-out / fan-in: one seed, 1,000 independent work tasks, one task that combines them all.

Run it:  shoal run examples/fan_out.py [--small]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import shoal

MASK = (1 << 64) - 1


@shoal.task
def make_seed() -> int:
    """Stand-in for a setup step whose output every worker needs."""
    return 20240611


@shoal.task
def work(seed: int, i: int) -> int:
    """A small deterministic computation: 1,000 steps of a 64-bit linear congruential generator."""
    x = (seed ^ (i * 0x9E3779B97F4A7C15)) & MASK
    for _ in range(1000):
        x = (x * 6364136223846793005 + 1442695040888963407) & MASK
    return x % 1_000_003


@shoal.task
def combine(results: list[int]) -> int:
    """Order-sensitive checksum of all results: sum of (position + 1) * result."""
    return sum((i + 1) * r for i, r in enumerate(results))


def fan_out(n: int, make: Callable[[Callable[..., Any]], Any] = shoal.task) -> Any:
    """The graph: one seed, n work tasks, one combine. ``make`` turns each plain function
    (``task.func``) into a lazy one: ``shoal.task`` here; the benchmarks also pass
    ``dask.delayed``, for the same graph on Dask."""
    make_seed_, work_, combine_ = make(make_seed.func), make(work.func), make(combine.func)
    seed = make_seed_()
    return combine_([work_(seed, i) for i in range(n)])


def reference(n: int) -> int:
    results = []
    for i in range(n):
        x = (20240611 ^ (i * 0x9E3779B97F4A7C15)) & MASK
        for _ in range(1000):
            x = (x * 6364136223846793005 + 1442695040888963407) & MASK
        results.append(x % 1_000_003)
    return sum((i + 1) * r for i, r in enumerate(results))


def main() -> None:
    n = 50 if "--small" in sys.argv else 1000
    graph = fan_out(n)
    start = time.perf_counter()
    total = graph.compute()
    elapsed = time.perf_counter() - start
    expected = reference(n)
    print(f"fan-out of {n} tasks: {total}")
    print(f"computed in {elapsed:.2f} s")
    if total != expected:
        raise SystemExit(f"wrong result: expected {expected}")


if __name__ == "__main__":
    main()
