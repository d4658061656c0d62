"""Tree reduction: sum 1,024 generated numbers pairwise, 10 levels deep.

Run it:  shoal run examples/tree_reduction.py [--small]
"""

from __future__ import annotations

import sys

import shoal


@shoal.task
def load(i: int) -> int:
    """Stand-in for reading one input: a deterministic number."""
    return (i * 7919) % 1000


@shoal.task
def add(x: int, y: int) -> int:
    return x + y


def tree_sum(n_leaves: int) -> shoal.Node:
    level = [load(i) for i in range(n_leaves)]
    while len(level) > 1:
        level = [add(level[i], level[i + 1]) for i in range(0, len(level), 2)]
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
