"""Cutting a leaf's subDAG must cost the subDAG, not the graph (issue 14, item 4).

A worker starting at a leaf of a pairwise tree receives the leaf's path to the root (about
log2 N tasks, plus stubs). This bench cuts and encodes that subDAG for 200 evenly spaced leaves
of trees from 1,024 to 500,000 leaves and prints the time per leaf, with its ratio to the
smallest tree's. Printed, never asserted. Session 6: 19, 144 and 748 µs per leaf at 1,024, 50,000
and 500,000 leaves before the cut visited only what it keeps; 18, 25 and 30 µs after.
"""

from __future__ import annotations

import time

import pytest

from shoal.config import Settings
from shoal.graph import freeze

from .test_graph_encoding import tree_reduction  # the same tree

LEAVES = [1024, 50_000, 500_000]
_per_leaf: dict[int, float] = {}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("leaves", LEAVES)
def test_leaf_cut_time_per_leaf(leaves: int) -> None:
    graph = freeze(tree_reduction(leaves), Settings()).graph
    roots = graph.roots()
    sample = roots[:: max(1, len(roots) // 200)][:200]
    began = time.perf_counter()
    sizes = [len(graph.subdag_for(None, [r]).encode()) for r in sample]
    per = (time.perf_counter() - began) / len(sample)
    _per_leaf[leaves] = per
    base = _per_leaf.get(LEAVES[0], per)
    print(
        f"\ntree of {leaves:,} leaves ({len(graph):,} tasks): cut + encode {per * 1e6:.0f} µs "
        f"per leaf ({per / base:.1f}x the 1,024-leaf tree's), subDAG {max(sizes)} bytes"
    )
