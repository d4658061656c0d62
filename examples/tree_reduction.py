"""Tree reduction: sum 1,024 generated numbers pairwise, 10 levels deep.

Run it:  shoal run examples/tree_reduction.py [--small]
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import shoal


@shoal.task
def load(i: int) -> int:
    """Stand-in for reading one input: a deterministic number."""
    return (i * 7919) % 1000


@shoal.task
def add(x: int, y: int) -> int:
    return x + y


def tree_sum(n_leaves: int, make: Callable[[Callable[..., Any]], Any] = shoal.task) -> Any:
    """The graph (n_leaves a power of two). ``make`` turns each plain function (``task.func``)
    into a lazy one: ``shoal.task`` here; the benchmarks also pass ``dask.delayed``, for the same
    graph on Dask."""
    load_, add_ = make(load.func), make(add.func)
    level = [load_(i) for i in range(n_leaves)]
    while len(level) > 1:
        level = [add_(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def main() -> None:
    n = 64 if "--small" in sys.argv else 1024
    total = tree_sum(n).compute()
    expected = sum((i * 7919) % 1000 for i in range(n))
    print(f"tree reduction of {n} leaves ({2 * n - 1} tasks): {total}")
    if total != expected:
        raise SystemExit(f"wrong result: expected {expected}")


if __name__ == "__main__":
    main()
