"""The encoded sizes of the standard graphs, against a committed baseline (issue 14).

The bytes of a frozen graph and of the largest subDAG a worker starting at a root receives are
deterministic for a given version of the encoding: no timing, no paths, no Python version (the
tasks are built-in functions, see below; function blobs themselves are left out). Any change
fails here, naming the graph and both sizes: a regression is caught, and an improvement is
recorded on purpose with ``make sizes-baseline`` (which rewrites ``tests/encoded_sizes.json``).
"""

from __future__ import annotations

import json
import operator
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import shoal
from shoal.config import Settings
from shoal.graph import freeze

BASELINE = Path(__file__).with_name("encoded_sizes.json")
UPDATE = os.environ.get("SHOAL_UPDATE_SIZES") == "1"


# Built-in functions as tasks: they travel by reference, as the same bytes on every Python and
# in every folder, and the content hash of each function's blob is part of the graph (a task of
# the user's own travels by value, with its file name and its version's bytecode, so its graph
# would encode to a few bytes more or less elsewhere). Only the graph's shape matters here.
inc = shoal.task(operator.neg)
add = shoal.task(operator.add)
make = shoal.task(int)
work = shoal.task(operator.sub)
total = shoal.task(sum)
load = shoal.task(max)
mul = shoal.task(operator.mul)


def pairwise(layer: list[shoal.Node[int]]) -> shoal.Node[int]:
    while len(layer) > 1:
        nxt = [add(layer[i], layer[i + 1]) for i in range(0, len(layer) - 1, 2)]
        if len(layer) % 2:
            nxt.append(layer[-1])
        layer = nxt
    return layer[0]


def tree(leaves: int) -> list[shoal.Node[Any]]:
    return [pairwise([inc(i) for i in range(leaves)])]


def fan(width: int) -> list[shoal.Node[Any]]:
    src = make()
    return [total([work(src, i) for i in range(width)])]


def gemm(blocks: int) -> list[shoal.Node[Any]]:
    a = [[load("A", i, k) for k in range(blocks)] for i in range(blocks)]
    b = [[load("B", k, j) for j in range(blocks)] for k in range(blocks)]
    return [
        pairwise([mul(a[i][k], b[k][j]) for k in range(blocks)])
        for i in range(blocks)
        for j in range(blocks)
    ]


def chain(length: int) -> list[shoal.Node[Any]]:
    node = inc(0)
    for _ in range(length - 1):
        node = inc(node)
    return [node]


GRAPHS: dict[str, Callable[[], list[shoal.Node[Any]]]] = {
    "tree-1k": lambda: tree(1024),
    "fan-1k": lambda: fan(1000),
    "gemm-16": lambda: gemm(16),
    "chain-1k": lambda: chain(1000),
}


def sizes(build: Callable[[], list[shoal.Node[Any]]]) -> dict[str, int]:
    fg = freeze(build(), Settings())
    graph = fg.graph
    graph.partition()
    subdags = [len(graph.subdag_for(None, [r]).encode()) for r in graph.roots()]
    return {
        "tasks": len(graph),
        "dag_bytes": len(graph.encode()),
        "largest_root_subdag_bytes": max(subdags),
        "constant_bytes": sum(len(b) for b in fg.constants.values()),
    }


def test_encoded_sizes_match_the_baseline() -> None:
    measured = {name: sizes(build) for name, build in GRAPHS.items()}
    if UPDATE:
        BASELINE.write_text(json.dumps(measured, indent=2, sort_keys=True) + "\n")
        pytest.skip(f"baseline rewritten: {BASELINE.name}")
    baseline = json.loads(BASELINE.read_text())
    changes = [
        f"{graph}: {what} is {now:,} bytes, the baseline says {was:,} ({now - was:+,})"
        for graph, figures in measured.items()
        for what, now in figures.items()
        if (was := baseline.get(graph, {}).get(what)) != now and was is not None
    ]
    missing = sorted(set(measured) - set(baseline))
    assert not changes and not missing, (
        "encoded sizes changed (a regression, or an improvement to record with "
        "`make sizes-baseline`):\n  "
        + "\n  ".join(changes + [f"{m}: not in the baseline" for m in missing])
    )
