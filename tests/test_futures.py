"""Futures and asyncio (issue 13): ``run.as_completed()`` yields each requested value as its task
finishes, ``submit`` takes several independent graphs, ``compute_async`` and ``events_async``
serve asyncio code, and cancelling an awaiting task cancels its run.

A "gated" task waits for a file the test writes once it has seen what must come first: if a
value came only at the run's end, the test would block on it (and fail at the gate's bound)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import shoal
from conftest import session_for
from reference import evaluate
from shoal.backends import LocalProcesses
from shoal.storage import keys

GATE_BOUND_S = 30.0


@shoal.task
def quick(x: int) -> int:
    return 10 * x


@shoal.task
def gated(gate: str, x: int) -> int:
    """Returns ``x`` once the file ``gate`` exists (polled: this is the task's own work)."""
    end = time.monotonic() + GATE_BOUND_S
    while not Path(gate).exists():
        if time.monotonic() > end:
            raise TimeoutError(f"the gate {gate} never opened")
        time.sleep(0.005)
    return x


@shoal.task
def gated_failure(gate: str) -> int:
    gated.func(gate, 0)
    raise KeyError("after the gate")


@shoal.task
def add(a: int, b: int) -> int:
    return a + b


@shoal.task
def numbers(n: int) -> list[int]:
    return list(range(n))


@pytest.fixture(params=["threads", "processes"])
def session(request: pytest.FixtureRequest, redis_url: str) -> Iterator[shoal.Session]:
    with session_for(request.param, redis_url) as s:
        yield s


def test_as_completed_yields_each_value_as_its_task_finishes(
    session: shoal.Session, tmp_path: Path
) -> None:
    gate = str(tmp_path / "gate")
    first, later = quick(1), gated(gate, 7)
    run = session.submit(later, first)
    got = run.as_completed(timeout=60)
    assert next(got) == (first, 10)  # before the gate opens: it came as it finished
    Path(gate).touch()
    assert list(got) == [(later, 7)]
    assert run.result() == (7, 10)


def test_as_completed_raises_the_failure_after_what_finished_before(
    session: shoal.Session, tmp_path: Path
) -> None:
    gate = str(tmp_path / "gate")
    first, failing = quick(2), gated_failure(gate)
    got = session.submit(first, failing).as_completed(timeout=60)
    assert next(got) == (first, 20)
    Path(gate).touch()
    with pytest.raises(KeyError, match="after the gate"):
        next(got)


def test_as_completed_gives_maps_and_repeated_nodes_too(session: shoal.Session) -> None:
    squares = shoal.map(add, numbers(4), 1)
    total = add(quick(1), 5)
    got = list(session.submit(squares, total, total).as_completed(timeout=60))
    assert sorted(got, key=repr) == sorted(
        [(squares, [1, 2, 3, 4]), (total, 15), (total, 15)], key=repr
    )


def test_as_completed_in_sync_mode_gives_everything_at_the_end() -> None:
    with shoal.Session.for_scheduler("sync") as s:
        a, b = quick(1), quick(2)
        assert list(s.submit(a, b).as_completed()) == [(a, 10), (b, 20)]


def test_submit_takes_several_independent_graphs(session: shoal.Session) -> None:
    graphs = [add(add(i, 1), quick(i)) for i in range(3)]
    assert session.submit(*graphs).result(timeout=60) == evaluate(*graphs)


def test_compute_async_from_asyncio_code(session: shoal.Session) -> None:
    async def main() -> tuple[tuple[Any, ...], ...]:
        # Two runs at once from one loop, which stays free meanwhile (the ticker runs).
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        t = asyncio.create_task(ticker())
        got = await asyncio.gather(
            session.compute_async(add(1, 2)), session.compute_async(quick(3), add(4, 5))
        )
        t.cancel()
        assert ticks > 1
        return tuple(got)

    assert asyncio.run(main()) == ((3,), (30, 9))


def test_compute_async_in_sync_mode() -> None:
    with shoal.Session.for_scheduler("sync") as s:
        assert asyncio.run(s.compute_async(add(quick(1), 1))) == (11,)


def test_events_async_follows_the_run(session: shoal.Session) -> None:
    run = session.submit(add(quick(1), 2))

    async def collect() -> list[str]:
        return [ev.type async for ev in run.events_async()]

    kinds = asyncio.run(collect())
    assert kinds[0] == "RUN_SUBMITTED" and kinds[-1] == "RUN_COMPLETED"
    assert kinds.count("TASK_COMPLETED") == 2
    assert run.result() == (12,)


@pytest.mark.slow
def test_cancelling_an_awaiting_task_cancels_its_run(redis_url: str, tmp_path: Path) -> None:
    gate = str(tmp_path / "never")  # never opened: the run can only end by its cancellation
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    before = set(r.scan_iter("shoal:{*}:events"))
    backend = LocalProcesses(max_workers=1, abandon_grace_s=0.2)
    with shoal.Session(redis_url=redis_url, backend=backend, progress=False) as s:

        async def main() -> None:
            task = asyncio.create_task(s.compute_async(add(gated(gate, 1), 1)))
            while not (set(r.scan_iter("shoal:{*}:events")) - before):
                await asyncio.sleep(0.01)  # the run was submitted
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(main())
        [stream] = set(r.scan_iter("shoal:{*}:events")) - before
        entries: list[tuple[str, dict[str, str]]] = r.xrange(stream)  # type: ignore[assignment]
        kinds = [f["type"] for _, f in entries]
        assert "RUN_CANCELLED" in kinds and "RUN_COMPLETED" not in kinds
        assert s.compute(quick(1), timeout=30) == (10,)  # the slot is free again
    run_id = stream[len("shoal:{") : -len("}:events")]
    assert r.exists(keys.meta(run_id)) == 0
    r.close()
