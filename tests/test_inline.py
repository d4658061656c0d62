"""Short tasks run inline on the worker's loop (issue 14, item 3): after three fast runs a
function skips the thread hop; one that turns slow inline goes back to threads, and while it
blocks the loop the lease guard renews the worker's leases, so no lease lapses and nothing runs
twice; a function that needs a thread (it runs an event loop itself) gets one; a task's own
``TimeoutError`` is not taken for its ``timeout_s``."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

import shoal
from conftest import session_for
from shoal.config import Settings
from shoal.runtime.inline import (
    FAST_TASK_S,
    INLINE_AFTER,
    InlinePolicy,
    LeaseGuard,
    Pause,
    PauseMeter,
)
from shoal.storage import keys

#: Short leases, so that a call blocking the loop for a few of them would lose them.
SETTINGS = Settings.from_env(lease_ttl_s=0.3)


@shoal.task
def where(marker: str, block_s: float) -> str:
    """Notes each run in ``marker``; returns the thread it ran on (inline: the main thread)."""
    with open(marker, "a") as f:
        f.write("ran\n")
    if block_s:
        time.sleep(block_s)  # a function fast so far that is slow this time: it blocks inline
    return threading.current_thread().name


async def _noop() -> int:
    return 7


@shoal.task
def runs_a_loop(now: bool) -> int:
    return asyncio.run(_noop()) if now else 0


@shoal.task
def raises_timeout() -> int:
    raise TimeoutError("the task's own timeout, not timeout_s")


@pytest.fixture
def session(redis_url: str) -> Iterator[shoal.Session]:
    """One process: every task of the test runs in the same warm process, one at a time."""
    with session_for("processes", redis_url, workers=1, settings=SETTINGS) as s:
        yield s


def test_the_policy_inlines_after_fast_runs_and_gives_up_on_a_slow_one() -> None:
    p = InlinePolicy()
    for _ in range(INLINE_AFTER):
        assert not p.inline(1)
        p.ran(1, FAST_TASK_S / 10, inline=False)
    assert p.inline(1)
    p.ran(1, FAST_TASK_S * 5, inline=True)  # slow inline: back to threads for good
    for _ in range(INLINE_AFTER + 1):
        p.ran(1, 0.0, inline=False)
    assert not p.inline(1)
    p.ran(2, 0.0, inline=False)
    p.ran(2, FAST_TASK_S * 5, inline=False)  # slow in a thread: start counting again
    p.ran(2, 0.0, inline=False)
    assert not p.inline(2)


def test_a_preempted_inline_call_keeps_its_place_and_one_that_waited_or_computed_does_not() -> None:
    p = InlinePolicy()
    for _ in range(INLINE_AFTER):
        p.ran(1, 0.0, inline=False)
    # Long on the wall clock, little CPU, no wait: other processes had the cores.
    p.ran(1, FAST_TASK_S * 5, inline=True, pause=Pause(FAST_TASK_S / 10, waited=False))
    assert p.inline(1)
    p.ran(1, FAST_TASK_S * 5, inline=True, pause=Pause(FAST_TASK_S / 10, waited=True))  # slept
    assert not p.inline(1)
    for _ in range(INLINE_AFTER):
        p.ran(2, 0.0, inline=False)
    p.ran(2, FAST_TASK_S * 5, inline=True, pause=Pause(FAST_TASK_S * 2, waited=False))  # computed
    assert not p.inline(2)


def test_the_pause_meter_tells_a_wait_from_computing() -> None:
    import time

    meter = PauseMeter()
    time.sleep(0.01)  # a wait: a voluntary context switch, almost no CPU
    slept = meter.stop()
    assert slept.waited and slept.cpu_s < FAST_TASK_S and not slept.preempted_only
    meter = PauseMeter()
    end = time.thread_time() + 2 * FAST_TASK_S
    while time.thread_time() < end:  # computing: CPU time, whatever the wall clock says
        pass
    busy = meter.stop()
    assert busy.cpu_s >= 2 * FAST_TASK_S and not busy.preempted_only


def test_the_guard_renews_while_a_call_blocks_and_stops_after() -> None:
    guard = LeaseGuard()
    renewed = threading.Event()
    guard.watch(renewed.set, every_s=0.05)
    assert renewed.wait(10), "the guard never renewed during a blocking call"
    guard.clear()
    assert guard.renewals >= 1


def stream(url: str, run_id: str) -> list[str]:
    r = redis.Redis.from_url(url, decode_responses=True)
    try:
        entries: list[tuple[str, dict[str, str]]] = r.xrange(keys.events(run_id))  # type: ignore[assignment]
        return [fields["type"] for _, fields in entries]
    finally:
        r.close()


def test_a_fast_function_runs_inline_and_a_slow_call_keeps_its_leases(
    session: shoal.Session, redis_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    threads: list[str] = []
    # Inline after three fast runs in a row. A run in a thread can take over the 1 ms that
    # counts as fast when the machine is loaded (CI runs three Pythons back to back), which
    # starts the count again: a few more runs are allowed for that.
    while "MainThread" not in threads and len(threads) < INLINE_AFTER + 6:
        threads.append(session.compute(where(str(marker), 0.0))[0])
    assert all(t != "MainThread" for t in threads[:INLINE_AFTER])  # threads at first
    assert threads[-1] == "MainThread", threads
    # Now slow, inline: it blocks the loop for ten lease TTLs; the guard keeps the leases.
    run = session.submit(where(str(marker), 10 * SETTINGS.lease_ttl_s))
    assert run.result(timeout=60) == ("MainThread",)
    kinds = stream(redis_url, run.id)
    assert "WORKER_LOST" not in kinds and "TASK_CRASHED" not in kinds, kinds
    assert marker.read_text().count("ran") == len(threads) + 1  # nothing ran twice
    assert session.compute(where(str(marker), 0.0)) != ("MainThread",)  # threads from now on


def test_a_function_that_runs_an_event_loop_gets_a_thread(session: shoal.Session) -> None:
    for _ in range(INLINE_AFTER):
        assert session.compute(runs_a_loop(False)) == (0,)
    assert session.compute(runs_a_loop(True)) == (7,)  # inline first, then in a thread
    assert session.compute(runs_a_loop(True)) == (7,)


@pytest.mark.parametrize("timeout_s", [None, 30.0])
def test_a_tasks_own_timeout_error_is_not_its_timeout(
    session: shoal.Session, timeout_s: float | None
) -> None:
    with pytest.raises(TimeoutError) as info:
        session.compute(raises_timeout.options(timeout_s=timeout_s)())
    err = info.value
    assert isinstance(err, shoal.TaskError)
    assert err.exc_type == "TimeoutError" and "own timeout" in err.message
