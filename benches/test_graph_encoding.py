"""Graph encoding: shoal's freeze + partition + encode against cloudpickle of the plain graph.

Four graphs, each built once as lazy Nodes outside every timed region:

* ``tree-1k``: tree reduction of 1,024 leaves (``inc(i)`` then pairwise ``add``), 2,047 tasks;
* ``fan-1k``: ``make() -> 1,000 x work(src, i) -> total(mids)``, 1,002 tasks;
* ``gemm-16``: 16x16 blocks, ``C[i][j] = sum_k mul(A[i][k], B[k][j])`` with a pairwise (tree)
  ``add`` reduction over k; A and B blocks are ``load(name, i, k)`` tasks (ints stand in for
  arrays), 8,448 tasks;
* ``tree-100k``: tree reduction of 50,000 leaves, 99,999 tasks.

Two baselines, both cloudpickle. **The node graph** (the issue's baseline): the lazy ``Node``
objects themselves, pickled as any picklable node class would be (class reference plus its
attributes; ``Node.__reduce__`` deliberately raises, so a pickler override stands in for the
default ``__reduce_ex__``). **Plain tuples** (a stricter one, what a lean naive engine would
ship): each node converted to a plain tuple ``(func, args)`` (``(func, args, kwargs)`` when
there are keyword arguments) whose upstream references are the converted tuples themselves,
shared nodes shared (one object, so pickle's memo writes it once). The conversion is iterative;
pickling the nested result recurses as deep as the graph, so the recursion limit is raised for
the dumps. Should that still overflow, the baseline falls back to a flat Dask-style dict
``{"name-i": (func, args)}`` with string keys standing for upstream references, and the table
says so. Two baseline timings are kept: the dumps alone (a lower bound for a naive engine) and
the conversion plus the dumps.
"""

from __future__ import annotations

import copyreg
import io
import pickle
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import cloudpickle
import pytest

import shoal
from shoal.config import Settings
from shoal.graph import FrozenGraph, freeze
from shoal.task import Node

RECURSION_LIMIT = 200_000
#: Graphs with more roots than this sample the leaf subDAG over evenly spaced roots.
SUBDAG_ALL_ROOTS_UP_TO = 4096
SUBDAG_SAMPLE = 512


# --- task functions (module level: cloudpickle and shoal both pickle them by reference) ---
# Parameters that are given lazy nodes are ``Any``: a task's parameter types are those of the
# values it receives, and the call passes the nodes computing them.


@shoal.task
def inc(x: int) -> int:
    return x + 1


@shoal.task
def add(x: Any, y: Any) -> Any:
    return x + y


@shoal.task
def make() -> int:
    return 1


@shoal.task
def work(src: Any, i: int) -> Any:
    return src + i


@shoal.task
def total(values: Any) -> Any:
    return sum(values)


@shoal.task
def load(name: str, i: int, k: int) -> int:
    return hash((name, i, k)) & 0xFFFF


@shoal.task
def mul(a: Any, b: Any) -> Any:
    return a * b


# --- graphs ---


def _pairwise(layer: list[Node[Any]]) -> Node[Any]:
    while len(layer) > 1:
        nxt = [add(layer[i], layer[i + 1]) for i in range(0, len(layer) - 1, 2)]
        if len(layer) % 2:
            nxt.append(layer[-1])
        layer = nxt
    return layer[0]


def tree_reduction(leaves: int) -> list[Node[Any]]:
    return [_pairwise([inc(i) for i in range(leaves)])]


def fan_out_in(width: int) -> list[Node[Any]]:
    src = make()
    mids = [work(src, i) for i in range(width)]
    return [total(mids)]


def gemm(blocks: int) -> list[Node[Any]]:
    a = [[load("A", i, k) for k in range(blocks)] for i in range(blocks)]
    b = [[load("B", k, j) for j in range(blocks)] for k in range(blocks)]
    return [
        _pairwise([mul(a[i][k], b[k][j]) for k in range(blocks)])
        for i in range(blocks)
        for j in range(blocks)
    ]


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], list[Node[Any]]]
    tasks: int


CASES = [
    Case("tree-1k", lambda: tree_reduction(1024), 2047),
    Case("fan-1k", lambda: fan_out_in(1000), 1002),
    Case("gemm-16", lambda: gemm(16), 2 * 16 * 16 + 16**3 + 16 * 16 * 15),
    Case("tree-100k", lambda: tree_reduction(50_000), 99_999),
]

_built: dict[str, list[Node[Any]]] = {}


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def case(request: pytest.FixtureRequest) -> tuple[Case, list[Node[Any]]]:
    c: Case = request.param
    if c.name not in _built:
        _built[c.name] = c.build()
    return c, _built[c.name]


# --- the baseline: the node graph as plain nested tuples ---


def _nodes_in(value: Any) -> Iterator[Node[Any]]:
    """Nodes inside an argument (containers nest shallowly, so recursion is fine here)."""
    if isinstance(value, Node):
        yield value
    elif isinstance(value, list | tuple | set | frozenset):
        for v in value:
            yield from _nodes_in(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _nodes_in(v)


def _replace(value: Any, done: dict[int, Any]) -> Any:
    if isinstance(value, Node):
        return done[id(value)]
    if isinstance(value, list):
        return [_replace(v, done) for v in value]
    if isinstance(value, tuple):
        return tuple(_replace(v, done) for v in value)
    if isinstance(value, dict):
        return {k: _replace(v, done) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        # Converted nodes hold lists, so they are not hashable: a naive engine ships a list.
        return [_replace(v, done) for v in value]
    return value


def to_plain(outputs: list[Node[Any]]) -> list[Any]:
    """The graph as ``(func, args[, kwargs])`` tuples nesting their upstreams (iterative)."""
    done: dict[int, Any] = {}
    for out in outputs:
        stack = [out]
        while stack:
            node = stack[-1]
            if id(node) in done:
                stack.pop()
                continue
            pending = [u for u in _nodes_in((node._args, node._kwargs)) if id(u) not in done]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            args = _replace(node._args, done)
            if node._kwargs:
                done[id(node)] = (node._func, args, _replace(node._kwargs, done))
            else:
                done[id(node)] = (node._func, args)
    return [done[id(n)] for n in outputs]


def to_flat(outputs: list[Node[Any]]) -> dict[str, Any]:
    """Dask-style fallback: ``{"name-i": (func, args)}``, upstream references as string keys."""
    keys: dict[int, str] = {}
    graph: dict[str, Any] = {}
    stack = list(outputs)
    order: list[Node[Any]] = []
    while stack:
        node = stack.pop()
        if id(node) in keys:
            continue
        keys[id(node)] = f"{node._name}-{len(keys)}"
        order.append(node)
        stack.extend(_nodes_in((node._args, node._kwargs)))
    for node in order:
        args = _replace(node._args, keys)
        if node._kwargs:
            graph[keys[id(node)]] = (node._func, args, _replace(node._kwargs, keys))
        else:
            graph[keys[id(node)]] = (node._func, args)
    return graph


def dumps(obj: Any) -> bytes:
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, RECURSION_LIMIT))
    try:
        blob: bytes = cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        return blob
    finally:
        sys.setrecursionlimit(old)


def baseline_kind(nodes: list[Node[Any]]) -> tuple[str, Callable[[list[Node[Any]]], Any]]:
    """Nested tuples, unless pickling them overflows the stack (then the flat dict)."""
    try:
        dumps(to_plain(nodes))
    except RecursionError:
        return "flat dict {key: (func, args)}", to_flat
    return "nested tuples", to_plain


class _NodeGraphPickler(cloudpickle.Pickler):
    """Pickles a ``Node`` as the default protocol would a plain class with these attributes."""

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is Node:
            state = {a: getattr(obj, a) for a in Node.__slots__ if a != "__weakref__"}
            # copyreg.__newobj__ (what the default protocol uses) is not in typeshed.
            return (vars(copyreg)["__newobj__"], (Node,), (None, state))
        return super().reducer_override(obj)


def dumps_node_graph(nodes: list[Node[Any]]) -> bytes:
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, RECURSION_LIMIT))
    try:
        buf = io.BytesIO()
        _NodeGraphPickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(nodes)
        return buf.getvalue()
    finally:
        sys.setrecursionlimit(old)


# --- timing ---


def _median_seconds(benchmark: Any, fn: Callable[[], Any]) -> float:
    """The benchmark's median, or a few timed runs when benchmarking is disabled."""
    if benchmark.stats is not None:
        return float(benchmark.stats.stats.median)
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def _entry(results: dict[str, dict[str, Any]], c: Case, tasks: int) -> dict[str, Any]:
    entry = results.setdefault(c.name, {"notes": []})
    entry["tasks"] = tasks
    return entry


def _leaf_subdag_bytes(fg: FrozenGraph) -> tuple[int, int, int]:
    """(max, min, roots looked at) of the encoded subDAG a worker starting at a root needs."""
    graph = fg.graph
    roots = graph.roots()
    if len(roots) > SUBDAG_ALL_ROOTS_UP_TO:
        step = len(roots) / SUBDAG_SAMPLE
        roots = sorted({roots[int(i * step)] for i in range(SUBDAG_SAMPLE)} | {roots[-1]})
    sizes = [len(graph.subdag_for(None, [r]).encode()) for r in roots]
    return max(sizes), min(sizes), len(roots)


# --- benchmarks ---


def test_shoal_freeze_partition_encode(
    benchmark: Any, case: tuple[Case, list[Node[Any]]], encoding_results: dict[str, dict[str, Any]]
) -> None:
    c, nodes = case
    settings = Settings()

    def run() -> tuple[FrozenGraph, bytes]:
        fg = freeze(nodes, settings)
        fg.graph.partition()
        return fg, fg.graph.encode()

    benchmark.group = c.name
    fg, blob = benchmark(run)
    seconds = _median_seconds(benchmark, run)
    tasks = len(fg.graph)
    assert tasks == c.tasks
    sub_max, sub_min, sub_roots = _leaf_subdag_bytes(fg)
    all_roots = len(fg.graph.roots())
    figures = {
        "seconds": seconds,
        "bytes": len(blob),
        "bytes_per_task": len(blob) / tasks,
        "function_bytes": sum(len(b) for b in fg.functions.values()),
        "functions": len(fg.functions),
        "constant_bytes": sum(len(b) for b in fg.constants.values()),
        "leaf_subdag_max_bytes": sub_max,
        "leaf_subdag_min_bytes": sub_min,
        "leaf_subdag_roots": sub_roots,
        "roots": all_roots,
    }
    benchmark.extra_info.update({"tasks": tasks, **figures})
    entry = _entry(encoding_results, c, tasks)
    entry["shoal"] = figures
    if sub_roots < all_roots:
        entry["notes"].append(
            f"{c.name}: leaf subDAG over {sub_roots} evenly spaced of {all_roots:,} roots"
        )


def test_cloudpickle_dumps(
    benchmark: Any, case: tuple[Case, list[Node[Any]]], encoding_results: dict[str, dict[str, Any]]
) -> None:
    """The dumps alone, of the plain structure converted outside the timing."""
    c, nodes = case
    kind, convert = baseline_kind(nodes)
    plain = convert(nodes)

    def run() -> bytes:
        return dumps(plain)

    benchmark.group = c.name
    blob = benchmark(run)
    seconds = _median_seconds(benchmark, run)
    figures = {"seconds": seconds, "bytes": len(blob), "kind": kind}
    benchmark.extra_info.update({"tasks": c.tasks, **figures})
    entry = _entry(encoding_results, c, c.tasks)
    entry["pickle"] = figures
    if convert is not to_plain:
        entry["notes"].append(f"{c.name}: nested tuples overflowed the stack, pickled {kind}")


def test_cloudpickle_node_graph(
    benchmark: Any, case: tuple[Case, list[Node[Any]]], encoding_results: dict[str, dict[str, Any]]
) -> None:
    """The issue's baseline: cloudpickle of the lazy node graph itself."""
    c, nodes = case

    def run() -> bytes:
        return dumps_node_graph(nodes)

    benchmark.group = c.name
    blob = benchmark(run)
    seconds = _median_seconds(benchmark, run)
    figures = {"seconds": seconds, "bytes": len(blob)}
    benchmark.extra_info.update({"tasks": c.tasks, **figures})
    _entry(encoding_results, c, c.tasks)["pickle_nodes"] = figures


def test_convert_and_cloudpickle_dumps(
    benchmark: Any, case: tuple[Case, list[Node[Any]]], encoding_results: dict[str, dict[str, Any]]
) -> None:
    """Node graph -> plain structure -> dumps, the baseline's analogue of freeze + encode."""
    c, nodes = case
    kind, convert = baseline_kind(nodes)

    def run() -> bytes:
        return dumps(convert(nodes))

    benchmark.group = c.name
    blob = benchmark(run)
    seconds = _median_seconds(benchmark, run)
    figures = {"seconds": seconds, "bytes": len(blob), "kind": kind}
    benchmark.extra_info.update({"tasks": c.tasks, **figures})
    _entry(encoding_results, c, c.tasks)["convert_pickle"] = figures
