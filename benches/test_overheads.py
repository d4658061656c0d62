"""shoal's fixed costs, one at a time.

* **Encoding**: a subDAG's encode and decode (a leaf's subDAG in a 1,024-leaf tree, what one
  worker starting at a leaf is sent, and the whole tree), and an invocation's (run id, start
  tasks, the leaf subDAG inline) — the work a worker does before its first task.
* **SubDAG retrieval**: a subDAG too large to travel inline is stored in the run's subDAG hash
  and fetched by the worker: ``RedisStorage.put_subdag`` / ``get_subdag`` against an
  ``EmbeddedServer`` (round trip + transfer), for a small, a mid-size and a large subDAG, and the
  fetch plus decode.
* **Per-task overhead**: what a task costs end to end beyond its work, on a warm session
  (``LocalProcesses(max_workers=2)``): a chain of N no-op tasks (every step waits for the one
  before: completion, hand-over, fetch) divided by N, and a fan-out of W no-op tasks between one
  root and one join (workers invoked by the root's worker, run two at a time) divided by W.
* **Bytes per invocation**: the invocations the client sends to start a 1,024-leaf tree, as
  ``shoal.client.submit.submit`` encodes them (captured by a backend that records instead of
  invoking), plus the function blobs the run stores once.

Figures are printed in the summary, never asserted.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

import shoal
from shoal import _core
from shoal.backends.base import Capabilities, Resources
from shoal.client import submit as client
from shoal.config import Settings
from shoal.graph import FrozenGraph, freeze
from shoal.runtime.invocation import Invocation
from shoal.server import EmbeddedServer
from shoal.storage import keys
from shoal.storage.memory import MemoryStorage
from shoal.storage.redis import RedisStorage

from .conftest import OVERHEADS, _table, shoal_processes

TREE_LEAVES = 1024
CHAIN = 200
WIDTH = 1000
ROUNDS = 5
RUN_ID = "0123456789abcdef"  # the client's run ids are 16 hex digits


def leaf(i: int) -> int:
    return i


def add(x: int, y: int) -> int:
    return x + y


def noop(x: int) -> int:
    return x


def nothing(x: int, i: int) -> int:
    return x


def join(xs: list[int]) -> int:
    return len(xs)


# The task functions below are given lazy nodes where the plain functions take values, which a
# task function's parameter types cannot express: their parameters are left open (``...``).


def tree(leaves: int) -> shoal.Node[Any]:
    lf = shoal.task(leaf)
    ad: shoal.TaskFunction[..., int] = shoal.task(add)
    level = [lf(i) for i in range(leaves)]
    while len(level) > 1:
        level = [ad(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def chain(n: int) -> shoal.Node[Any]:
    step: shoal.TaskFunction[..., int] = shoal.task(noop)
    node = step(0)
    for _ in range(n - 1):
        node = step(node)
    return node


def fan(width: int) -> shoal.Node[Any]:
    root = shoal.task(noop)(0)
    join_: shoal.TaskFunction[..., int] = shoal.task(join)
    nothing_: shoal.TaskFunction[..., int] = shoal.task(nothing)
    return join_([nothing_(root, i) for i in range(width)])


def per_call(fn: Callable[[], Any], calls: int = 200, repeats: int = 5) -> float:
    """Median over ``repeats`` of the mean time of one call, in seconds."""
    samples: list[float] = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - t) / calls)
    return statistics.median(samples)


@pytest.fixture(scope="module")
def tree_frozen() -> FrozenGraph:
    return freeze([tree(TREE_LEAVES)])


def leaf_subdag(frozen: FrozenGraph) -> _core.Graph:
    return frozen.graph.subdag_for(None, [frozen.graph.roots()[0]])


def test_subdag_encode_decode(benchmark: Any, tree_frozen: FrozenGraph) -> None:
    graph = tree_frozen.graph
    root = graph.roots()[0]
    sub = leaf_subdag(tree_frozen)
    blob = sub.encode()
    whole = graph.encode()
    figures = {
        "leaf subDAG cut": (per_call(lambda: graph.subdag_for(None, [root])), None),
        "leaf subDAG encode": (per_call(sub.encode), len(blob)),
        "leaf subDAG decode": (per_call(lambda: _core.Graph.decode(blob)), len(blob)),
        f"tree-1k ({len(graph):,} tasks) encode": (per_call(graph.encode, 20), len(whole)),
        f"tree-1k ({len(graph):,} tasks) decode": (
            per_call(lambda: _core.Graph.decode(whole), 20),
            len(whole),
        ),
    }
    benchmark(_core.Graph.decode, blob)
    OVERHEADS["encoding"] = figures


def test_invocation_encode_decode(benchmark: Any, tree_frozen: FrozenGraph) -> None:
    blob = leaf_subdag(tree_frozen).encode()
    root = tree_frozen.graph.roots()[0]
    inline = Invocation(RUN_ID, None, (root,), blob, None)
    stored = Invocation(RUN_ID, None, (root,), None, f"t{root}")
    data, ref = inline.encode(), stored.encode()
    OVERHEADS["invocation"] = {
        "invocation (leaf subDAG inline) encode": (per_call(inline.encode), len(data)),
        "invocation (leaf subDAG inline) decode": (
            per_call(lambda: Invocation.decode(data)),
            len(data),
        ),
        "invocation (subDAG by name) encode": (per_call(stored.encode), len(ref)),
        "invocation (subDAG by name) decode": (per_call(lambda: Invocation.decode(ref)), len(ref)),
    }
    benchmark(Invocation.decode, data)


def test_subdag_retrieval(benchmark: Any, tree_frozen: FrozenGraph) -> None:
    """Stored subDAGs fetched from a real server, one ``get_subdag`` (HGET) at a time."""
    big = freeze([tree(16_384)]).graph
    subdags = {
        "leaf": leaf_subdag(tree_frozen).encode(),
        f"tree-1k ({len(tree_frozen.graph):,} tasks)": tree_frozen.graph.encode(),
        f"tree-16k ({len(big):,} tasks)": big.encode(),
    }
    figures: dict[str, tuple[float, int | None]] = {}

    async def measure(url: str) -> None:
        storage = RedisStorage(url)
        try:
            await storage.ping()  # connected before timing
            # A run's subDAG hash exists from its submission (a straggler never re-creates it).
            await storage.client.hset(keys.subdags(RUN_ID), "_", b"")
            for name, blob in subdags.items():
                calls = 200 if len(blob) < 100_000 else 30
                samples = []
                for _ in range(ROUNDS):
                    t = time.perf_counter()
                    for _ in range(calls):
                        await storage.put_subdag(RUN_ID, name, blob)
                    samples.append((time.perf_counter() - t) / calls)
                figures[f"put {name} subDAG"] = (statistics.median(samples), len(blob))
                assert await storage.get_subdag(RUN_ID, name) == blob
                samples = []
                for _ in range(ROUNDS):
                    t = time.perf_counter()
                    for _ in range(calls):
                        await storage.get_subdag(RUN_ID, name)
                    samples.append((time.perf_counter() - t) / calls)
                figures[f"get {name} subDAG"] = (statistics.median(samples), len(blob))
                samples = []
                for _ in range(ROUNDS):
                    t = time.perf_counter()
                    for _ in range(calls):
                        got = await storage.get_subdag(RUN_ID, name)
                        assert got is not None
                        _core.Graph.decode(got)
                    samples.append((time.perf_counter() - t) / calls)
                figures[f"get + decode {name} subDAG"] = (statistics.median(samples), len(blob))
        finally:
            await storage.client.delete(keys.subdags(RUN_ID))
            await storage.close()

    with EmbeddedServer() as server:
        asyncio.run(measure(server.url))

        def fetch_leaf() -> None:
            async def go() -> None:
                storage = RedisStorage(server.url)
                await storage.client.hset(keys.subdags(RUN_ID), "_", b"")  # as at submission
                await storage.put_subdag(RUN_ID, "leaf", subdags["leaf"])
                await storage.get_subdag(RUN_ID, "leaf")
                await storage.client.delete(keys.subdags(RUN_ID))
                await storage.close()

            asyncio.run(go())

        # pytest-benchmark's record: connect, put, get, delete, close (a cold worker's view).
        benchmark.pedantic(fetch_leaf, rounds=20, iterations=1)
    OVERHEADS["retrieval"] = figures


def test_per_task_overhead(benchmark: Any) -> None:
    with shoal_processes() as s:
        s.compute(chain(10), fan(10))  # warm: worker processes started, functions cached
        chain_times: list[float] = []
        fan_times: list[float] = []
        for _ in range(ROUNDS):
            node = chain(CHAIN)
            t = time.perf_counter()
            assert s.compute(node)[0] == 0
            chain_times.append(time.perf_counter() - t)
            node = fan(WIDTH)
            t = time.perf_counter()
            assert s.compute(node)[0] == WIDTH
            fan_times.append(time.perf_counter() - t)
        benchmark.pedantic(
            lambda n: s.compute(n), setup=lambda: ((chain(CHAIN),), {}), rounds=3, iterations=1
        )
    chain_s, fan_s = statistics.median(chain_times), statistics.median(fan_times)
    OVERHEADS["per task"] = {
        f"chain of {CHAIN} no-ops, per task": (chain_s / CHAIN, None),
        f"fan-out 1 -> {WIDTH:,} no-ops -> 1, per task": (fan_s / WIDTH, None),
        f"chain of {CHAIN} no-ops, makespan": (chain_s, None),
        f"fan-out 1 -> {WIDTH:,} no-ops -> 1, makespan": (fan_s, None),
    }


class RecordingBackend:
    """A backend that keeps the invocations it is handed instead of starting workers."""

    name = "recording"
    capabilities = Capabilities(max_payload=None, warm_reuse=False)

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def start(self, storage: Any, settings: Settings) -> None:
        pass

    async def invoke(self, invocation: bytes, resources: Resources | None) -> None:
        self.sent.append(invocation)

    async def invoke_many(self, items: Sequence[tuple[bytes, Resources | None]]) -> None:
        self.sent.extend(data for data, _ in items)

    async def queued(self) -> int:
        return len(self.sent)

    async def drain(self) -> None:
        pass

    async def cancel(self, run_id: str) -> None:
        pass

    async def close(self) -> None:
        pass


def test_bytes_per_invocation(benchmark: Any, tree_frozen: FrozenGraph) -> None:
    """What the client sends to start a tree-1k: one invocation per leaf (every task flexible)."""
    backend = RecordingBackend()

    async def submit() -> None:
        storage = MemoryStorage()
        await client.submit(tree_frozen, storage, backend, Settings.from_env())

    asyncio.run(submit())
    sizes = [len(b) for b in backend.sent]
    tasks = len(tree_frozen.graph)
    OVERHEADS["bytes"] = {
        "tasks": tasks,
        "invocations": len(sizes),
        "total": sum(sizes),
        "mean": statistics.mean(sizes),
        "max": max(sizes),
        "per task": sum(sizes) / tasks,
        "functions": sum(len(b) for b in tree_frozen.functions.values()),
    }
    benchmark(lambda: asyncio.run(submit()))


def overheads_summary_lines() -> list[str]:
    lines: list[str] = []
    rows = []
    for section in ("encoding", "invocation", "retrieval", "per task"):
        for label, (seconds, size) in OVERHEADS.get(section, {}).items():
            micros = seconds * 1e6
            shown = f"{micros:,.1f} us" if micros < 10_000 else f"{seconds * 1e3:,.1f} ms"
            rows.append([label, shown, "-" if size is None else f"{size:,}"])
    if rows:
        lines += _table(rows, ["what", "time", "bytes"])
    b = OVERHEADS.get("bytes")
    if b:
        lines += [
            "",
            f"client -> workers to start a tree-1k ({b['tasks']:,} tasks): {b['invocations']:,} "
            f"invocations, {b['total']:,} B in all,",
            f"  {b['mean']:.0f} B each on average (max {b['max']:,}), {b['per task']:.1f} B per "
            f"task; function blobs (stored once): {b['functions']:,} B",
        ]
    lines += [
        "",
        "times are medians of per-call means; encode/decode in this process; get = one HGET on",
        "a warm connection to an embedded server (round trip + transfer), put = one HSET;",
        "tree-16k = a tree of 16,384 leaves; per task = makespan / chain length or fan-out",
        "width, on a warm 2-worker LocalProcesses session (no-op tasks).",
    ]
    return lines
