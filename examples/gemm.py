"""Blocked matrix multiply: C = A @ B on n x n grids of numpy blocks, one task per block product
and a pairwise summation tree per block of C.

Run it:  shoal run examples/gemm.py [--small]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

import shoal

#: One block of a matrix.
Block = npt.NDArray[np.float64]


@shoal.task
def make_block(matrix: int, i: int, j: int, size: int) -> Block:
    """Block (i, j) of matrix 0 (A) or 1 (B), generated on the worker from its seed."""
    return np.random.default_rng((matrix, i, j)).standard_normal((size, size))


@shoal.task
def matmul(a: Block, b: Block) -> Block:
    return a @ b


@shoal.task
def add(x: Block, y: Block) -> Block:
    return x + y


@shoal.task
def assemble(rows: list[list[Block]]) -> Block:
    return np.block(rows)


def tree_sum(nodes: list[Any], add_: Callable[..., Any]) -> Any:
    while len(nodes) > 1:
        pairs = [add_(nodes[i], nodes[i + 1]) for i in range(0, len(nodes) - 1, 2)]
        nodes = pairs + nodes[len(pairs) * 2 :]  # an odd one out moves up a level
    return nodes[0]


def gemm(n: int, size: int, make: Callable[[Callable[..., Any]], Any] = shoal.task) -> Any:
    """The graph. ``make`` turns each plain function (``task.func``) into a lazy one:
    ``shoal.task`` here; the benchmarks also pass ``dask.delayed``, for the same graph on Dask."""
    make_block_, matmul_, add_, assemble_ = (
        make(t.func) for t in (make_block, matmul, add, assemble)
    )
    a = [[make_block_(0, i, k, size) for k in range(n)] for i in range(n)]
    b = [[make_block_(1, k, j, size) for j in range(n)] for k in range(n)]
    c = [
        [tree_sum([matmul_(a[i][k], b[k][j]) for k in range(n)], add_) for j in range(n)]
        for i in range(n)
    ]
    return assemble_(c)


def main() -> None:
    n, size = (3, 16) if "--small" in sys.argv else (8, 128)
    graph = gemm(n, size)
    start = time.perf_counter()
    c = graph.compute()
    elapsed = time.perf_counter() - start

    def whole(matrix: int) -> Block:
        blocks = [
            [np.random.default_rng((matrix, i, j)).standard_normal((size, size)) for j in range(n)]
            for i in range(n)
        ]
        return np.block(blocks)

    expected = whole(0) @ whole(1)
    error = float(np.max(np.abs(c - expected))) if c.shape == expected.shape else float("inf")
    print(
        f"gemm of ({n} x {n}) blocks of {size}x{size}: checksum {float(c.sum()):.6f}, "
        f"max abs error {error:.2e}"
    )
    print(f"computed in {elapsed:.2f} s")
    if c.shape != expected.shape or not np.allclose(c, expected):
        raise SystemExit(f"wrong result: expected checksum {float(expected.sum()):.6f}")


if __name__ == "__main__":
    main()
