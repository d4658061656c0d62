"""The storage contract: every implementation (in-memory, Redis) must pass these unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

import pytest

from shoal.storage import keys
from shoal.storage.base import (
    Completion,
    Downstream,
    ErrorRecord,
    Expansion,
    Gather,
    RunSpec,
    Storage,
    TaskStart,
)
from shoal.storage.memory import MemoryStorage
from shoal.storage.redis import RedisStorage

T = TypeVar("T")


class FakeClock:
    """The memory store's clock in these tests: leases run out when a test advances it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Storage:
    if request.param == "memory":
        return MemoryStorage(clock=FakeClock())
    return RedisStorage(request.getfixturevalue("clean_redis"))


async def run_out(store: Storage, run_id: str = "r1") -> list[str]:
    """Lets every lease held now run out; the members ``expired()`` reported meanwhile.

    A sentinel lease taken last expires last: once it is reported, so is every lease that was
    held before it (on the memory store the clock jumps; on Redis the poll is bounded)."""
    await store.fetch(run_id, [], lease=["sentinel"])
    if isinstance(store, MemoryStorage):
        clock = store.clock
        assert isinstance(clock, FakeClock)
        clock.now += store.lease_ttl_s
    seen: set[str] = set()
    for _ in range(1000):
        expired = await store.expired(run_id)
        assert expired is not None, "the run's state is gone"
        seen.update(expired)
        if "sentinel" in seen:
            return sorted(seen - {"sentinel"})
        await asyncio.sleep(0.005)
    raise AssertionError(f"the sentinel lease never expired (seen: {sorted(seen)})")


def spec(
    run: str = "r1",
    outputs: Iterable[int] = (9,),
    workers: Iterable[int] = (),
    subdags: dict[str, bytes] | None = None,
    constants: dict[bytes, bytes] | None = None,
) -> RunSpec:
    return RunSpec(
        run_id=run,
        functions={b"h" * 16: b"fn-blob"},
        constants=constants or {b"c" * 16: b"const-blob"},
        subdags=subdags or {"w1": b"sub"},
        outputs=list(outputs),
        started_workers=list(workers),
        ttl_s=60,
        events_ttl_s=30,
    )


def run(coro: Coroutine[Any, Any, T], store: Storage | None = None) -> T:
    """Runs a test's coroutine, then closes ``store`` on the same loop (its connections live
    there)."""

    async def main() -> T:
        try:
            return await coro
        finally:
            if store is not None:
                await store.close()

    return asyncio.run(main())


def test_submit_then_fetch_functions_constants_subdags(store: Storage) -> None:
    async def go() -> None:
        await store.submit(spec(), {"type": "RUN_SUBMITTED"})
        got = await store.fetch("r1", [], [b"h" * 16, b"x" * 16], [b"c" * 16])
        assert got.functions == {b"h" * 16: b"fn-blob"}
        assert got.constants == {b"c" * 16: b"const-blob"}
        assert await store.get_subdag("r1", "w1") == b"sub"
        assert await store.get_subdag("r1", "nope") is None
        [(_, ev)] = await store.read_events("r1")
        assert ev == {"type": "RUN_SUBMITTED"}

    run(go(), store)


def test_completion_counts_down_and_returns_ready_once(store: Storage) -> None:
    async def go() -> None:
        await store.submit(spec(outputs=[3]), {"type": "RUN_SUBMITTED"})
        down = [Downstream(3, 2, None)]
        r1 = await store.complete("r1", Completion(1, b"one", False, down, False, None))
        assert r1.first and r1.ready == [] and not r1.run_finished
        again = await store.complete("r1", Completion(1, b"other", False, down, False, None))
        assert not again.first and again.ready == []
        r2 = await store.complete("r1", Completion(2, b"two", False, down, False, None))
        assert r2.ready == [3]
        # Task 1's consumer was not ready when it completed: its output was stored, first wins.
        got = await store.fetch("r1", [1, 2])
        assert got.outputs == {1: b"one"}
        r3 = await store.complete("r1", Completion(3, b"three", True, [], True, None))
        assert r3.run_finished
        assert (await store.results("r1", [3])).outputs == {3: b"three"}
        types = [e["type"] for _, e in await store.read_events("r1")]
        assert types.count("RUN_COMPLETED") == 1 and types[-1] == "RUN_COMPLETED"

    run(go(), store)


def test_pinned_ready_tasks_go_to_inbox_and_invoke_once(store: Storage) -> None:
    async def go() -> None:
        await store.submit(spec(outputs=[5], workers=[0]), {"type": "RUN_SUBMITTED"})
        down = [Downstream(5, 1, 7), Downstream(6, 1, 7), Downstream(8, 1, 0)]
        r = await store.complete("r1", Completion(1, b"v", True, down, False, 0))
        assert r.ready == [8]  # pinned to the completing worker itself
        assert r.invoke_workers == [7]
        assert await store.pop_inbox("r1", 7, 0.1) == [5, 6]
        assert await store.pop_inbox("r1", 7, 0.05) == []
        r = await store.complete("r1", Completion(2, b"v", True, [Downstream(9, 1, 7)], False, 0))
        assert r.invoke_workers == []  # worker 7 was started already
        assert await store.pop_inbox("r1", 7, 0.1) == [9]

    run(go(), store)


def test_blocking_reads_wake_on_writes(store: Storage) -> None:
    async def go() -> None:
        await store.submit(spec(), {"type": "RUN_SUBMITTED"})
        first = (await store.read_events("r1"))[-1][0]

        async def later() -> None:
            await asyncio.sleep(0.05)
            await store.append_event("r1", {"type": "PING"})

        task = asyncio.create_task(later())
        got = await store.read_events("r1", first, block_s=5)
        await task
        assert [e["type"] for _, e in got] == ["PING"]
        assert await store.read_events("r1", got[-1][0], block_s=0.05) == []

    run(go(), store)


def test_a_batch_of_events_is_appended_in_order_and_never_to_a_gone_stream(
    store: Storage,
) -> None:
    async def go() -> None:
        await store.submit(spec(), {"type": "RUN_SUBMITTED"})
        batch = [{"type": "TASK_METRICS", "task": str(i)} for i in range(5)]
        await store.append_events("r1", batch)
        await store.append_events("r1", [])
        got = [e for _, e in await store.events_range("r1")]
        assert got[1:] == batch
        await store.append_events("gone", batch)  # no such run: no stream appears
        assert await store.events_range("gone") == []

    run(go(), store)


def test_failure_is_recorded_once(store: Storage) -> None:
    async def go() -> None:
        await store.submit(spec(), {"type": "RUN_SUBMITTED"})
        rec = ErrorRecord(4, "t", 2, "KeyError", "k", "tb", "w", 1.0)
        assert await store.fail("r1", rec)
        assert not await store.fail("r1", rec)
        assert list(await store.errors("r1")) == [4]
        types = [e["type"] for _, e in await store.read_events("r1")]
        assert types[-2:] == ["TASK_FAILED", "RUN_FAILED"]

    run(go(), store)


def test_a_cancelled_run_reads_cancelled_and_changes_no_more(store: Storage) -> None:
    async def go() -> None:
        await store.submit(spec(outputs=[9]), {"type": "RUN_SUBMITTED"})
        assert await store.cancel("r1", "cancelled")
        assert not await store.cancel("r1", "cancelled")  # once
        assert await store.run_ended("r1")
        assert not await store.fail("r1", ErrorRecord(4, "t", 1, "KeyError", "k", "tb", "w", 1.0))
        assert (await store.fetch("r1", [], starting=3)).ended  # no task of it starts
        late = await store.complete("r1", Completion(9, b"nine", True, [], True, None))
        assert not late.run_finished
        kinds = [e["type"] for _, e in await store.read_events("r1")]
        assert kinds == ["RUN_SUBMITTED", "RUN_CANCELLED", "TASK_COMPLETED"]
        assert not await store.cancel("gone", "cancelled")

    run(go(), store)


def test_a_failed_run_stays_failed_when_its_last_output_completes_late(store: Storage) -> None:
    async def go() -> None:
        await store.submit(spec(outputs=[9]), {"type": "RUN_SUBMITTED"})
        assert await store.fail("r1", ErrorRecord(4, "t", 1, "KeyError", "k", "tb", "w", 1.0))
        late = await store.complete("r1", Completion(9, b"nine", True, [], True, None))
        assert late.first and not late.run_finished
        assert await store.run_ended("r1")
        types = [e["type"] for _, e in await store.read_events("r1")]
        assert "RUN_COMPLETED" not in types and types[-3:-1] == ["TASK_FAILED", "RUN_FAILED"]

    run(go(), store)


def test_no_task_of_an_ended_run_starts_nor_a_done_task_twice(store: Storage) -> None:
    """A task start (``starting``) of a failed, completed or cleaned-up run is refused, and so
    is one of a task done already unless it is a rerun: no event, no lease; plain reads (the
    client's results) still work."""

    async def go() -> None:
        started = {"type": "TASK_STARTED", "task": "5"}
        await store.submit(spec(outputs=[9]), {"type": "RUN_SUBMITTED"})
        live = await store.fetch("r1", [], event=started, lease=["r5"], starting=5)
        assert not live.ended and not live.done
        await store.complete("r1", Completion(5, b"five", False, [], False, None))
        again = await store.fetch("r1", [], event=started, lease=["r5"], starting=5)
        assert again.done and not again.ended  # a duplicate's start: refused, nothing written
        rerun = await store.fetch("r1", [], event=started, lease=["r5"], starting=5, rerun=True)
        assert not rerun.done  # a recovery recomputing a lost output may run it again
        await store.complete("r1", Completion(9, b"nine", True, [], True, None))  # completed
        refused = await store.fetch("r1", [], event=started, lease=["r6"], starting=6)
        assert refused.ended and refused.outputs == {}
        assert (await store.results("r1", [9])).outputs == {9: b"nine"}
        types = [e["type"] for _, e in await store.read_events("r1")]
        assert types.count("TASK_STARTED") == 2  # the first start and the rerun
        await store.submit(spec(run="r2"), {"type": "RUN_SUBMITTED"})
        await store.fail("r2", ErrorRecord(4, "t", 1, "KeyError", "k", "tb", "w", 1.0))
        assert (await store.fetch("r2", [], event=started, starting=0)).ended
        await store.cleanup("r2", [])
        assert (await store.fetch("r2", [], event=started, starting=0)).ended
        assert "TASK_STARTED" not in [e["type"] for _, e in await store.read_events("r2")]

    run(go(), store)


def test_a_straggler_storing_a_subdag_after_cleanup_re_creates_nothing(store: Storage) -> None:
    async def go() -> None:
        await store.submit(spec(), {"type": "RUN_SUBMITTED"})
        await store.put_subdag("r1", "t5", b"during the run")
        assert await store.get_subdag("r1", "t5") == b"during the run"
        await store.cleanup("r1", [])
        await store.put_subdag("r1", "t6", b"after cleanup")
        assert await store.get_subdag("r1", "t6") is None
        assert await store.run_keys("r1") == [keys.events("r1")]

    run(go(), store)


def test_cleanup_leaves_only_the_event_stream(store: Storage) -> None:
    async def go() -> None:
        await store.submit(spec(outputs=[1], workers=[2]), {"type": "RUN_SUBMITTED"})
        await store.complete("r1", Completion(1, b"v", True, [Downstream(3, 1, 2)], True, None))
        await store.put_subdag("r1", "t5", b"big")
        await store.submit(spec(run="other"), {"type": "RUN_SUBMITTED"})
        assert len(await store.run_keys("r1")) > 3
        await store.cleanup("r1", [keys.inbox("r1", 2)])
        assert await store.run_keys("r1") == [keys.events("r1")]
        assert len(await store.run_keys("other")) > 1  # another run is untouched

    run(go(), store)


def test_every_run_key_carries_the_hash_tag() -> None:
    for key in [
        *keys.fixed_run_keys("abc"),
        keys.inbox("abc", 1),
        keys.leases("abc"),
        keys.events("abc"),
    ]:
        assert "{abc}" in key
    assert "{" not in keys.function(b"h" * 16)


def test_a_cleaned_up_run_is_never_recreated_by_stragglers(store: Storage) -> None:
    async def go() -> None:
        await store.submit(spec(outputs=[1]), {"type": "RUN_SUBMITTED"})
        await store.cleanup("r1", [])
        late = await store.complete("r1", Completion(1, b"v", True, [Downstream(2, 2, 3)], True, 3))
        assert not late.first and late.ready == []
        assert not await store.fail("r1", ErrorRecord(1, "t", 1, "E", "m", "tb", "w", 1.0))
        await store.fetch("r1", [1], event={"type": "TASK_STARTED", "task": "1"})
        assert await store.run_keys("r1") == [keys.events("r1")]

    run(go(), store)


def test_fetch_appends_the_started_event_in_the_same_call(store: Storage) -> None:
    async def go() -> None:
        await store.submit(spec(outputs=[2]), {"type": "RUN_SUBMITTED"})
        await store.complete(
            "r1", Completion(1, b"one", True, [Downstream(2, 1, None)], False, None)
        )
        got = await store.fetch("r1", [1], event={"type": "TASK_STARTED", "task": "2"})
        assert got.outputs == {1: b"one"}
        types = [e["type"] for _, e in await store.read_events("r1")]
        assert types == ["RUN_SUBMITTED", "TASK_COMPLETED", "TASK_STARTED"]

    run(go(), store)


def test_outputs_that_stayed_on_their_worker_are_not_results(store: Storage) -> None:
    async def go() -> None:
        await store.submit(spec(outputs=[2]), {"type": "RUN_SUBMITTED"})
        await store.complete(
            "r1", Completion(1, None, False, [Downstream(2, 1, None)], False, None)
        )
        assert (await store.results("r1", [1])).outputs == {}
        assert (await store.fetch("r1", [1])).outputs == {}

    run(go(), store)


def test_recent_runs_lists_submitted_runs_newest_first(store: Storage) -> None:
    async def go() -> None:
        await store.submit(spec(run="a"), {"type": "RUN_SUBMITTED"})
        await asyncio.sleep(0.01)
        await store.submit(spec(run="b"), {"type": "RUN_SUBMITTED"})
        assert [r for r, _ in await store.recent_runs()][:2] == ["b", "a"]
        assert [e["type"] for _, e in await store.events_range("a")] == ["RUN_SUBMITTED"]

    run(go(), store)


def test_every_redis_key_of_a_run_has_a_ttl(clean_redis: str) -> None:
    import redis

    store = RedisStorage(clean_redis)

    async def go() -> None:
        await store.submit(spec(outputs=[5], workers=[0]), {"type": "RUN_SUBMITTED"})
        down = [Downstream(5, 1, 7), Downstream(6, 2, None)]
        await store.complete("r1", Completion(1, b"v", True, down, False, 0))
        await store.put_subdag("r1", "t9", b"big")
        assert await store.fail("r1", ErrorRecord(6, "t", 1, "E", "m", "tb", "w", 1.0))
        await store.close()

    run(go())
    r = redis.Redis.from_url(clean_redis)
    run_keys = [k for k in r.keys("*") if b"{r1}" in k]
    assert keys.errors("r1").encode() in run_keys and len(run_keys) >= 7
    assert all(r.ttl(k) > 0 for k in run_keys), {k: r.ttl(k) for k in run_keys}
    r.close()


def test_a_start_rides_with_a_completion_only_when_its_task_is_ready(store: Storage) -> None:
    """``complete(..., then=...)``: the next task starts in the same call, after the completion
    (its event follows TASK_COMPLETED, its inputs include what the completion stored), and
    only when that completion made it ready (``if_ready``) or it was ready here already."""
    store.lease_ttl_s = 0.3

    async def go() -> None:
        await store.submit(spec(outputs=[4]), {"type": "RUN_SUBMITTED"})
        fan_in = [Downstream(3, 2, None)]
        started = {"type": "TASK_STARTED", "task": "3"}
        then = TaskStart(3, outputs=[1, 2], functions=[b"h" * 16], constants=[b"c" * 16],
                         event=started, lease=["r3"], if_ready=True)  # fmt: skip
        # Task 3 still waits for task 2: no start, and no TASK_STARTED.
        r1 = await store.complete("r1", Completion(1, b"one", False, fan_in, False, None), then)
        assert r1.first and r1.ready == [] and r1.started is None
        r2 = await store.complete("r1", Completion(2, b"two", False, fan_in, False, None), then)
        assert r2.ready == [3] and r2.started is not None
        got = r2.started
        assert got.outputs == {1: b"one"}  # task 2's output stayed on its worker (not stored)
        assert got.functions == {b"h" * 16: b"fn-blob"}
        assert got.constants == {b"c" * 16: b"const-blob"}
        assert not got.ended and not got.done and got.crashes == ()
        types = [e["type"] for _, e in await store.read_events("r1")]
        assert types == ["RUN_SUBMITTED", "TASK_COMPLETED", "TASK_COMPLETED", "TASK_STARTED"]
        # The start took the running lease in place of the queued one the completion gave.
        assert await run_out(store) == ["r3"]
        # A repeated completion starts nothing.
        again = await store.complete("r1", Completion(2, b"two", False, fan_in, False, None), then)
        assert not again.first and again.started is None
        # Not if_ready: a task ready here already starts whatever the completion readies.
        queued = TaskStart(4, outputs=[3], event={"type": "TASK_STARTED", "task": "4"})
        r3 = await store.complete("r1", Completion(3, b"three", True, [], False, None), queued)
        assert r3.ready == [] and r3.started is not None and r3.started.outputs == {3: b"three"}
        # Done already (a duplicate): refused, as a plain start would be.
        await store.complete("r1", Completion(4, b"four", True, [], True, None))
        dup = TaskStart(4, event={"type": "TASK_STARTED", "task": "4"})
        r5 = await store.complete("r1", Completion(5, b"", False, [], False, None), dup)
        assert r5.started is not None and r5.started.ended  # the run completed with task 4

    run(go(), store)


def test_leases_cover_tasks_from_ready_to_completed(store: Storage) -> None:
    store.lease_ttl_s = 0.3

    async def go() -> None:
        await store.submit(spec(outputs=[3]), {"type": "RUN_SUBMITTED"})
        await store.fetch("r1", [], lease=["t1", "w4"])  # task 1 starts on pinned worker 4
        assert await store.expired("r1") == []
        down = [Downstream(2, 1, None), Downstream(3, 1, None)]
        done = await store.complete("r1", Completion(1, b"v", False, down, False, None))
        assert sorted(done.ready) == [2, 3]
        await store.release("r1", ["t3"])  # task 3 went into a durable queue
        # Task 1's lease went with its completion; 2 and the worker lease ran out.
        assert await run_out(store) == ["t2", "w4"]
        assert await store.expired("r1") == []  # reported once, then given a grace period
        await store.renew("r1", ["t2", "t3"])  # renewing a dropped lease does not revive it
        assert await run_out(store) == ["t2", "w4"]
        # A repeat completion drops the lease its worker took.
        await store.fetch("r1", [], lease=["t1"])
        await store.complete("r1", Completion(1, b"v", False, down, False, None))
        await store.release("r1", ["t2", "w4"])
        assert await run_out(store) == []
        await store.cleanup("r1", [])
        assert await store.expired("r1") is None
        await store.fetch("r1", [], lease=["t9"])
        assert await store.run_keys("r1") == [keys.events("r1")]

    run(go(), store)


def test_expired_leases_come_soonest_first_and_renewal_postpones_them() -> None:
    clock = FakeClock()
    store = MemoryStorage(lease_ttl_s=10, clock=clock)

    async def go() -> None:
        await store.submit(spec(), {"type": "RUN_SUBMITTED"})
        await store.fetch("r1", [], lease=["t5", "t7"])
        clock.now += 4
        await store.fetch("r1", [], lease=["t1"])
        clock.now += 5
        await store.renew("r1", ["t7"])  # now expires at +19
        clock.now += 1  # t5 at +10 is due; t1 (+14) and t7 not yet
        assert await store.expired("r1") == ["t5"]
        clock.now += 9
        assert await store.expired("r1") == ["t1", "t7"]  # soonest first
        clock.now += 0.5
        assert await store.expired("r1") == []  # each reported once, then given a grace
        clock.now += 0.5
        assert await store.expired("r1") == ["t5"]  # its grace ran out
        clock.now += 9
        assert await store.expired("r1") == ["t1", "t7"]  # one expiry: by name

    run(go())


def test_task_states_say_done_stored_or_not(store: Storage) -> None:
    async def go() -> None:
        await store.submit(spec(outputs=[3]), {"type": "RUN_SUBMITTED"})
        down = [Downstream(3, 2, None)]
        await store.complete("r1", Completion(1, b"one", False, down, False, None))  # waits
        await store.complete("r1", Completion(2, None, False, down, False, None))  # kept
        assert await store.task_states("r1", [1, 2, 3]) == {1: True, 2: False, 3: None}

    run(go(), store)


# -- maps (see shoal.runtime.elements) ---------------------------------------------------------

E0 = (1 << 32) | 0  # element 0 of the map with ordinal 0
E1 = (3 << 32) | 0  # element 0 of the map with ordinal 1
ITEM0 = (2 << 32) | 0  # item 0 of the chain rooted at ordinal 0


def chain(width: int, *, is_output: bool = False, pinned_consumer: int | None = None) -> Expansion:
    """Map 10 (root, ord 0) -> map 11 (ord 1) element-wise; 11 is gathered into task 12."""
    consumer = [Downstream(12, 1, pinned_consumer)]
    maps = [Gather(10, [], False, {"name": "f"}), Gather(11, consumer, is_output, {"name": "g"})]
    return Expansion(
        root=10,
        width=width,
        items=[f"item{i}".encode() for i in range(width)],
        item_base=ITEM0,
        element_base=E0,
        maps=maps,
        worker=None,
        event={"name": "f", "elements": str(2 * width)},
    )


def test_an_expansion_records_items_and_readies_the_root_elements_once(store: Storage) -> None:
    async def go() -> None:
        await store.submit(spec(outputs=[12]), {"type": "RUN_SUBMITTED"})
        r = await store.expand("r1", chain(3))
        assert r.first and r.ready == [E0, E0 + 1, E0 + 2] and not r.run_finished
        again = await store.expand("r1", chain(3))
        assert not again.first and again.ready == []
        got = await store.fetch("r1", [ITEM0, ITEM0 + 2])
        assert got.outputs == {ITEM0: b"item0", ITEM0 + 2: b"item2"}
        # Items count as stored outputs (a recovery starts an element from its item).
        assert await store.task_states("r1", [ITEM0, E0]) == {ITEM0: True, E0: None}
        leased = await store.expired("r1")  # nothing expired yet, but the elements are leased
        assert leased == []
        await store.release("r1", [f"t{E0 + i}" for i in range(3)])
        expanded = [e for _, e in await store.read_events("r1") if e["type"] == "MAP_EXPANDED"]
        assert expanded == [{"type": "MAP_EXPANDED", "task": "10", "width": "3", **chain(3).event}]

    run(go(), store)


def test_the_last_element_completes_its_map_and_counts_down_the_consumer(store: Storage) -> None:
    async def go() -> None:
        await store.submit(spec(outputs=[12]), {"type": "RUN_SUBMITTED"})
        x = chain(2)
        await store.expand("r1", x)
        gather = x.maps[1]
        # Expanded, but no element of map 11 is done: its list is not there yet.
        assert (await store.fetch("r1", [], lists={11: E1})).lists == {}
        # Element 0 of map 10 readies element 0 of map 11 (one input: no counter).
        r = await store.complete(
            "r1",
            Completion(
                E0, None, False, [Downstream(E1, 1, None)], False, None, gathers=[x.maps[0]]
            ),
        )
        assert r.ready == [E1]
        r = await store.complete(
            "r1", Completion(E1, b"a", True, [], False, None, gathers=[gather])
        )
        assert r.ready == []
        assert (await store.fetch("r1", [], lists={11: E1})).lists == {}  # not all there yet
        r = await store.complete(
            "r1", Completion(E1, b"x", True, [], False, None, gathers=[gather])
        )
        assert not r.first  # a repeat counts nothing
        r = await store.complete(
            "r1", Completion(E1 + 1, b"b", True, [], False, None, gathers=[gather])
        )
        assert r.ready == [12]
        got = await store.fetch("r1", [], lists={11: E1})
        assert got.lists == {11: [b"a", b"b"]}
        assert (await store.task_states("r1", [11]))[11] is False  # done; elements hold values
        completed = [e for _, e in await store.read_events("r1") if e["type"] == "TASK_COMPLETED"]
        assert [e["task"] for e in completed] == [str(E0), str(E1), str(E1 + 1), "11"]
        assert completed[-1] == {"type": "TASK_COMPLETED", "task": "11", "width": "2", "name": "g"}

    run(go(), store)


def test_width_zero_completes_every_map_of_the_chain_at_once(store: Storage) -> None:
    async def go() -> None:
        await store.submit(spec(outputs=[11]), {"type": "RUN_SUBMITTED"})
        r = await store.expand("r1", chain(0, is_output=True, pinned_consumer=4))
        assert r.first and r.ready == [] and r.run_finished
        assert r.invoke_workers == [4]  # the consumer pinned to worker 4 got its inbox entry
        assert await store.pop_inbox("r1", 4, 0.1) == [12]
        got = await store.results("r1", [], lists={11: E1, 10: E0})
        assert got.lists == {11: [], 10: []}
        types = [e["type"] for _, e in await store.read_events("r1")]
        assert types[-4:] == ["MAP_EXPANDED", "TASK_COMPLETED", "TASK_COMPLETED", "RUN_COMPLETED"]

    run(go(), store)


def test_lists_of_maps_that_did_not_expand_are_absent(store: Storage) -> None:
    async def go() -> None:
        await store.submit(spec(), {"type": "RUN_SUBMITTED"})
        assert (await store.fetch("r1", [], lists={10: E0})).lists == {}

    run(go(), store)


def test_kept_values_until_released(store: Storage) -> None:
    async def go() -> None:
        assert await store.kept_value("v1") is None
        await store.keep_value("v1", b"blob", 60)
        assert await store.kept_value("v1") == b"blob"
        assert await store.release_value("v1") is True
        assert await store.kept_value("v1") is None
        assert await store.release_value("v1") is False

    run(go(), store)
