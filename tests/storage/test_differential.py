"""The in-memory store (Python, :mod:`shoal.storage.state`) and Redis (the Lua scripts) answer
every sequence of operations alike.

A scenario is a random DAG (pinned workers, requested outputs, map chains of width 0..3 with a
child map and gathered consumers) and a random sequence of operations: completions and
expansions in a valid order, interleaved with duplicates (same or other output / width),
premature completions, failures, lease takes / renewals / releases, reads, and a cleanup after
which stragglers keep going. Both stores get the same sequence; every answer is compared as it
comes, then the event streams, the keys left and the raw run state.

Leases are long enough that none expires (expiry timing is covered by the contract suite, on a
fake clock for the memory store).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from shoal.runtime.elements import element_id, item_id
from shoal.storage import keys
from shoal.storage.base import (
    Completion,
    CompletionResult,
    Downstream,
    ErrorRecord,
    Event,
    Expansion,
    Gather,
    RunSpec,
)
from shoal.storage.memory import MemoryStorage
from shoal.storage.redis import RedisStorage

CI = bool(os.environ.get("CI"))
WORKERS = (0, 1, 2)
#: Long enough that no lease expires during an example, on either store.
LEASE_S = 3600.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- scenarios -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chain:
    root: int  # a static task of the DAG: expanded, never completed
    child: int | None  # a map running element-wise after the root (its id is not static)
    width: int
    ord: int  # the root's ordinal; the child's is ord + 1

    def maps(self) -> list[int]:
        return [self.root] if self.child is None else [self.root, self.child]

    def element(self, m: int, i: int) -> int:
        return element_id(self.ord + (m != self.root), i)


@dataclass
class Dag:
    deps: list[list[int]]  # static task -> its static dependencies
    pinned: list[int | None]
    chains: dict[int, Chain]  # by root
    #: (chain root, consumer) -> the map of the chain whose gather counts the consumer down.
    fed_by: dict[tuple[int, int], int]
    outputs: list[int]
    started: list[int]

    def consumers(self, t: int) -> list[int]:
        return [j for j, ds in enumerate(self.deps) if t in ds]

    def down(self, j: int) -> Downstream:
        return Downstream(j, len(self.deps[j]), self.pinned[j])

    def gather(self, chain: Chain, m: int, extra: Event) -> Gather:
        fed = [j for j in self.consumers(chain.root) if self.fed_by[(chain.root, j)] == m]
        return Gather(m, [self.down(j) for j in fed], m in self.outputs, {"name": f"m{m}", **extra})

    def ids(self) -> list[int]:
        """Every id a read asks about: static tasks, child maps, elements, items."""
        found = list(range(len(self.deps)))
        for c in self.chains.values():
            found += [m for m in c.maps() if m >= len(self.deps)]
            for i in range(4):
                found += [c.element(m, i) for m in c.maps()] + [item_id(c.ord, i)]
        return found

    def lists(self) -> dict[int, int]:
        return {m: c.element(m, 0) for c in self.chains.values() for m in c.maps()}


@dataclass(frozen=True)
class Op:
    kind: str  # complete, expand, fail, take, renew, release, hand_off, crashed, read, cleanup
    record: Completion | Expansion | ErrorRecord | None = None
    members: tuple[str, ...] = ()
    workers: tuple[int, ...] = ()
    #: crashed: the task, how, and whether the platform requeues its invocation.
    task: int = 0
    how: str = ""
    requeue: bool = False


@dataclass
class Scenario:
    dag: Dag
    ops: list[Op] = field(default_factory=list)


outputs_ = st.sampled_from([None, b"", b"a", b"bb"])
workers_ = st.sampled_from([None, *WORKERS])


@st.composite
def extras(draw: st.DrawFn) -> Event:
    """Event fields from the caller; sometimes ones the store sets itself (which it keeps)."""
    if draw(st.integers(0, 4)) == 0:
        return {"type": "X", "task": "-1", "width": "9", "k": "v"}
    return {}


@st.composite
def dags(draw: st.DrawFn) -> Dag:
    n = draw(st.integers(1, 9))
    deps = [sorted(draw(st.sets(st.integers(0, t - 1), max_size=3))) if t else [] for t in range(n)]
    pinned = [draw(st.sampled_from([None, None, *WORKERS])) for _ in range(n)]
    roots = sorted(draw(st.sets(st.integers(0, n - 1), max_size=2)))
    chains, fed_by = {}, {}
    for k, r in enumerate(roots):
        child = 100 + r if draw(st.booleans()) else None
        chains[r] = c = Chain(r, child, draw(st.integers(0, 3)), 2 * k)
        for j in range(n):
            if r in deps[j]:
                fed_by[(r, j)] = draw(st.sampled_from(c.maps()))
    candidates = [t for t in range(n) if t not in chains]
    candidates += [m for c in chains.values() for m in c.maps()]
    outputs = sorted(draw(st.sets(st.sampled_from(candidates), min_size=1, max_size=3)))
    started = sorted(draw(st.sets(st.sampled_from(WORKERS), max_size=2)))
    return Dag(deps, pinned, chains, fed_by, outputs, started)


def completion(draw: st.DrawFn, dag: Dag, t: int) -> Completion:
    return Completion(
        task=t,
        output=draw(outputs_),
        must_store=draw(st.booleans()),
        downstream=[dag.down(j) for j in dag.consumers(t)],
        is_output=t in dag.outputs,
        worker=draw(workers_),
        event={"name": f"t{t}", **draw(extras())},
    )


def element_completion(draw: st.DrawFn, dag: Dag, c: Chain, m: int, i: int) -> Completion:
    down = [Downstream(c.element(c.child, i), 1, None)] if m == c.root and c.child else []
    return Completion(
        task=c.element(m, i),
        output=draw(outputs_),
        must_store=draw(st.booleans()),
        downstream=down,
        is_output=False,
        worker=draw(workers_),
        event={"name": f"e{m}", **draw(extras())},
        gathers=[dag.gather(c, m, draw(extras()))],
    )


def expansion(draw: st.DrawFn, dag: Dag, c: Chain, width: int) -> Expansion:
    return Expansion(
        root=c.root,
        width=width,
        items=[draw(st.sampled_from([b"", b"i", b"j"])) for _ in range(width)],
        item_base=item_id(c.ord, 0),
        element_base=c.element(c.root, 0),
        maps=[dag.gather(c, m, draw(extras())) for m in c.maps()],
        worker=draw(workers_),
        event={"name": f"x{c.root}", "elements": str(width * len(c.maps())), **draw(extras())},
    )


@st.composite
def noise(draw: st.DrawFn, dag: Dag, past: list[Op]) -> Op:
    """An operation off the valid path."""
    n = len(dag.deps)
    kind = draw(
        st.sampled_from(["dup"] * 3 + ["premature", "fail", "lease", "lease", "crash", "read"])
    )
    if draw(st.integers(0, 30)) == 0:
        kind = "cleanup"  # rare: the rest of the example is stragglers
    if kind == "dup" and past:
        op = draw(st.sampled_from(past))
        rec = op.record
        if isinstance(rec, Completion):  # another attempt: maybe another output, same counts
            rec = Completion(
                rec.task, draw(outputs_), draw(st.booleans()), rec.downstream,
                rec.is_output, draw(workers_), rec.event, rec.gathers,
            )  # fmt: skip
        elif isinstance(rec, Expansion) and draw(st.booleans()):
            rec = expansion(draw, dag, dag.chains[rec.root], draw(st.integers(0, 3)))
        return Op(op.kind, rec)
    if kind == "premature":  # before its inputs are done, or an element before its chain
        chains = list(dag.chains.values())
        if len(chains) > 0 and draw(st.booleans()):
            c = draw(st.sampled_from(chains))
            m, i = draw(st.sampled_from(c.maps())), draw(st.integers(0, 3))
            if draw(st.booleans()):
                return Op("expand", expansion(draw, dag, c, draw(st.integers(0, 3))))
            return Op("complete", element_completion(draw, dag, c, m, i))
        return Op("complete", completion(draw, dag, draw(st.integers(0, n - 1))))
    if kind == "fail":
        t = draw(st.integers(0, n - 1))
        record = ErrorRecord(t, f"t{t}", draw(st.integers(1, 3)), "E", "m", "tb", "w", 1.5)
        return Op("fail", record)
    if kind == "lease":
        ids = dag.ids()[: n + 4]
        pool = [keys.task_lease(t) for t in ids] + [keys.running_lease(t) for t in ids]
        pool += [keys.worker_lease(w) for w in WORKERS]
        pool += [keys.handoff_lease(m) for m in pool if not m.startswith("r")]
        members = tuple(draw(st.lists(st.sampled_from(pool), max_size=3)))
        kinds = ["take", "renew", "release", "hand_off"]
        return Op(draw(st.sampled_from(kinds)), members=members, task=draw(st.sampled_from(ids)))
    if kind == "crash":
        return Op(
            "crashed",
            task=draw(st.integers(0, n - 1)),
            how=draw(st.sampled_from(["exit code 1", "killed by SIGSEGV"])),
            requeue=draw(st.booleans()),
        )
    if kind == "cleanup":
        return Op("cleanup", workers=tuple(sorted(draw(st.sets(st.sampled_from(WORKERS))))))
    return Op("read")


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    dag = draw(dags())
    s = Scenario(dag)
    n = len(dag.deps)
    done: set[Any] = set()  # static tasks, ("map", m) finished, ("el", m, i) elements

    def satisfied(j: int) -> bool:
        return all(
            ("map", dag.fed_by[(d, j)]) in done if d in dag.chains else d in done
            for d in dag.deps[j]
        )

    def finish_maps() -> None:
        for c in dag.chains.values():
            if ("x", c.root) in done:
                for m in c.maps():
                    if all(("el", m, i) in done for i in range(c.width)):
                        done.add(("map", m))

    work: list[Op] = []
    while True:
        avail: list[tuple[Any, ...]] = []
        for t in range(n):
            if t not in done and ("x", t) not in done and satisfied(t):
                avail.append(("x", t) if t in dag.chains else ("t", t))
        for c in dag.chains.values():
            if ("x", c.root) in done:
                for i in range(c.width):
                    for m in c.maps():
                        parent_done = m == c.root or ("el", c.root, i) in done
                        if ("el", m, i) not in done and parent_done:
                            avail.append(("el", c.root, m, i))
        if not avail or draw(st.integers(0, 40)) == 0:  # sometimes a run stops half-way
            break
        step = draw(st.sampled_from(avail))
        if step[0] == "t":
            op = Op("complete", completion(draw, dag, step[1]))
            done.add(step[1])
        elif step[0] == "x":
            c = dag.chains[step[1]]
            op = Op("expand", expansion(draw, dag, c, c.width))
            done.add(("x", c.root))
        else:
            _, root, m, i = step
            op = Op("complete", element_completion(draw, dag, dag.chains[root], m, i))
            done.add(("el", m, i))
        finish_maps()
        s.ops.append(op)
        work.append(op)
        for _ in range(draw(st.integers(0, 2))):
            s.ops.append(draw(noise(dag, work)))
    return s


# -- running a scenario on both stores ---------------------------------------------------------


def spec(run_id: str, dag: Dag) -> RunSpec:
    return RunSpec(
        run_id=run_id,
        functions={b"h" * 16: b"fn"},
        constants={b"c" * 16: b"const"},
        subdags={"w1": b"sub"},
        outputs=dag.outputs,
        started_workers=dag.started,
        ttl_s=600,
        events_ttl_s=60,
    )


async def apply(store: MemoryStorage | RedisStorage, rid: str, dag: Dag, op: Op) -> Any:
    """One operation; its answer, as something comparable."""
    rec = op.record
    if op.kind == "complete":
        assert isinstance(rec, Completion)
        return await store.complete(rid, rec)
    if op.kind == "expand":
        assert isinstance(rec, Expansion)
        return await store.expand(rid, rec)
    if op.kind == "fail":
        assert isinstance(rec, ErrorRecord)
        return await store.fail(rid, rec)
    if op.kind == "take":
        return await store.fetch(rid, [], lease=op.members, starting=op.task)
    if op.kind == "hand_off":
        return await store.hand_off(rid, op.members)
    if op.kind == "crashed":
        return await store.crashed(rid, op.task, op.how, "w", op.requeue)
    if op.kind == "renew":
        return await store.renew(rid, op.members)
    if op.kind == "release":
        return await store.release(rid, op.members)
    if op.kind == "cleanup":
        return await store.cleanup(rid, [keys.inbox(rid, w) for w in op.workers])
    return await read(store, rid, dag)


async def read(store: MemoryStorage | RedisStorage, rid: str, dag: Dag) -> Any:
    ids = dag.ids()
    left = await store.run_keys(rid)
    # Only inboxes that exist are popped: an empty pop would wait out its timeout, and the
    # keys compared above already say which inboxes are empty on both stores.
    inboxes = {
        w: await store.pop_inbox(rid, w, 0.01) for w in WORKERS if keys.inbox(rid, w) in left
    }
    return {
        "keys": left,
        "inboxes": inboxes,
        "states": await store.task_states(rid, ids),
        "fetched": await store.fetch(rid, ids, lists=dag.lists()),
        "ended": await store.run_ended(rid),
        "expired": await store.expired(rid),
        "errors": await store.errors(rid),
    }


async def raw_memory(store: MemoryStorage, rid: str) -> dict[str, Any] | None:
    s = store._state(rid)
    if s is None:
        return None
    return {
        "outputs_left": s.outputs_left,
        "ended": s.ended,
        "done": sorted(s.done),
        "outputs": s.outputs,
        "pending": s.pending,
        "gathers": s.gathers,
        "widths": s.widths,
        "started": sorted(s.started),
        "leases": sorted(s.leases),
        "inboxes": {w: list(q) for w, q in s.inboxes.items()},
        "crashes": {t: "\n".join(hows) for t, hows in s.crashes.items()},
    }


async def raw_redis(store: RedisStorage, rid: str) -> dict[str, Any] | None:
    """The run's keys on the server, read back into the shape of a RunState."""
    p = store.client.pipeline(transaction=False)
    p.hgetall(keys.meta(rid))
    for hash_key in (keys.outputs(rid), keys.pending(rid), keys.widths(rid)):
        p.hgetall(hash_key)
    p.smembers(keys.started(rid))
    p.zrange(keys.leases(rid), 0, -1)
    p.hgetall(keys.crashes(rid))
    for w in WORKERS:
        p.lrange(keys.inbox(rid, w), 0, -1)
    meta, out, pending, widths, started, leases, crashes, *inboxes = await p.execute()
    if not meta:
        return None

    def fields(h: dict[bytes, bytes]) -> dict[str, bytes]:
        return {k.decode(): v for k, v in h.items() if k != b"_"}

    counters = fields(pending)
    return {
        "outputs_left": int(meta[b"outputs_left"]),
        "ended": meta[b"ended"].decode() if b"ended" in meta else None,
        "done": sorted(int(k) for k in fields(out)),
        "outputs": {int(k): v for k, v in fields(out).items() if v},
        "pending": {int(k): int(v) for k, v in counters.items() if not k.startswith("g")},
        "gathers": {int(k[1:]): int(v) for k, v in counters.items() if k.startswith("g")},
        "widths": {int(k): int(v) for k, v in fields(widths).items()},
        "started": sorted(int(w) for w in started if w != b"_"),
        "leases": sorted(m.decode() for m in leases if m != b"_"),
        "inboxes": {w: [int(t) for t in q] for w, q in zip(WORKERS, inboxes, strict=True) if q},
        "crashes": {int(k): v.decode() for k, v in fields(crashes).items()},
    }


def events(got: list[tuple[str, Event]]) -> list[Event]:
    """The stream without its clock readings: each store stamps ``stored_at`` with its own."""
    out = []
    for _, e in got:
        if e["type"] == "TASK_COMPLETED" and "width" not in e:
            assert float(e["stored_at"]) > 0  # every task's own completion is stamped
        out.append({k: v for k, v in e.items() if k != "stored_at"})
    return out


def coverage(scenario: Scenario, seen: list[Event]) -> None:
    """What the example exercised (``--hypothesis-show-statistics``)."""
    event(f"operations: {len(scenario.ops) // 10 * 10}+")
    for e in seen:
        if e["type"] in ("RUN_COMPLETED", "RUN_FAILED"):
            event(e["type"])
        elif e["type"] == "MAP_EXPANDED":
            event(f"expanded to width {e['width']}")
        elif e["type"] == "TASK_COMPLETED" and e.get("name", "").startswith("m"):
            event("a map completed")
    kinds = {op.kind for op in scenario.ops}
    for kind in sorted(kinds & {"cleanup", "take", "renew", "release"}):
        event(kind)


async def differ(redis: RedisStorage, scenario: Scenario) -> None:
    dag, rid = scenario.dag, f"d{uuid.uuid4().hex[:12]}"
    memory = MemoryStorage(lease_ttl_s=LEASE_S, clock=FakeClock())
    try:
        for store in (memory, redis):
            await store.submit(spec(rid, dag), {"type": "RUN_SUBMITTED"})
        for i, op in enumerate([*scenario.ops, Op("read")]):
            want = await apply(memory, rid, dag, op)
            got = await apply(redis, rid, dag, op)
            assert got == want, f"operation {i}: {op}"
            if isinstance(want, CompletionResult) and want.invoke_workers:
                event("a pinned worker to invoke")
            if isinstance(want, dict) and want["inboxes"]:
                event("an inbox popped")
        assert await raw_redis(redis, rid) == await raw_memory(memory, rid)
        seen = events(await redis.events_range(rid))
        assert seen == events(await memory.events_range(rid))
        coverage(scenario, seen)
        for store in (memory, redis):
            await store.cleanup(rid, [keys.inbox(rid, w) for w in WORKERS])
        assert await redis.run_keys(rid) == await memory.run_keys(rid) == [keys.events(rid)]
    finally:  # the next examples' SCANs stay short
        await redis.client.delete(keys.events(rid), *[keys.inbox(rid, w) for w in WORKERS])


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def redis_store(redis_url: str, loop: asyncio.AbstractEventLoop) -> Iterator[RedisStorage]:
    store = RedisStorage(redis_url, lease_ttl_s=LEASE_S)
    yield store
    loop.run_until_complete(store.close())


@settings(
    max_examples=2000 if CI else 300,
    deadline=None,
    derandomize=CI,
    print_blob=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenario=scenarios())
def test_memory_and_redis_agree_on_every_sequence(
    scenario: Scenario, loop: asyncio.AbstractEventLoop, redis_store: RedisStorage
) -> None:
    loop.run_until_complete(differ(redis_store, scenario))
