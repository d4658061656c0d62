"""A session shared by many threads, runs watched while nobody waits, and runs that give up
(DESIGN §2, §6): one loop thread serves every caller; a run that fails or times out frees the
worker slots its hung tasks hold; the progress line names a task that runs long."""

from __future__ import annotations

import concurrent.futures
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import shoal
from conftest import leaked_keys
from reference import evaluate
from shoal.backends import LocalProcesses
from shoal.config import Settings
from shoal.events import TaskCompleted, WorkerLost
from shoal.progress import LONG_TASK_S, RunProgress
from shoal.server import EmbeddedServer
from shoal.storage import keys
from test_crashes import LosesInvocations
from test_faults import wait_for_progress


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer() as s:
        yield s


@shoal.task
def add(*xs: int) -> int:
    return sum(xs)


@shoal.task
def hangs(x: int) -> int:
    time.sleep(3600)  # a task stuck for good (no timeout_s)
    return x


def tree(seed: int) -> shoal.Node[Any]:
    leaves = [add(seed, i) for i in range(4)]
    return add(add(*leaves[:2]), add(*leaves[2:]), seed)


@pytest.mark.parametrize("scheduler", ["processes", "threads", "sync"])
def test_fifty_threads_share_one_session(server: EmbeddedServer, scheduler: str) -> None:
    if scheduler == "processes":
        s = shoal.Session(redis_url=server.url, backend=LocalProcesses(2), progress=False)
    else:
        s = shoal.Session.for_scheduler(scheduler)
    with s, concurrent.futures.ThreadPoolExecutor(50) as pool:
        futures = {seed: pool.submit(s.compute, tree(seed), timeout=90) for seed in range(50)}
        got = {seed: f.result() for seed, f in futures.items()}
    assert got == {seed: evaluate(tree(seed)) for seed in range(50)}
    assert leaked_keys(server.url) == []


def test_threads_submit_and_wait_for_each_others_runs(server: EmbeddedServer) -> None:
    with (
        shoal.Session(redis_url=server.url, backend=LocalProcesses(2), progress=False) as s,
        concurrent.futures.ThreadPoolExecutor(8) as pool,
    ):
        runs = list(pool.map(lambda seed: s.submit(tree(seed)), range(20)))
        results = list(pool.map(lambda run: run.result(timeout=90), reversed(runs)))
    assert results == [evaluate(tree(seed)) for seed in reversed(range(20))]


def test_a_submitted_run_is_watched_before_anyone_waits(server: EmbeddedServer) -> None:
    """Its first invocation is lost; nobody calls result() until the run has completed, so
    only the session's own watchdog can have recovered it."""
    backend = LosesInvocations(LocalProcesses(max_workers=2, requeue_dead=False), lose=1)
    settings = Settings.from_env(lease_ttl_s=0.6)
    session = shoal.Session(
        redis_url=server.url, backend=backend, settings=settings, progress=False
    )
    with session as s:
        run = s.submit(add(1, 2))
        seen = list(run.events())  # follows the stream to its end, recovering nothing itself
        assert seen[-1].type == "RUN_COMPLETED"
        lost = [e.lease for e in seen if isinstance(e, WorkerLost)]
        assert len(lost) == 1 and lost[0].startswith("ht")
        assert run.result(timeout=30) == (3,)


@pytest.mark.parametrize("how", ["timeout", "failure"])
def test_a_run_that_gives_up_frees_the_slots_of_its_hung_tasks(
    server: EmbeddedServer, how: str
) -> None:
    backend = LocalProcesses(max_workers=2, abandon_grace_s=0.2)
    # Flexible, so each root has a worker of its own (a planner may put them on one, where
    # the hung one would keep the failing one from running).
    with shoal.Session(redis_url=server.url, backend=backend, progress=False, planner="none") as s:
        for _ in range(2):  # each run leaves a hung task on one of the two slots
            if how == "timeout":
                with pytest.raises(shoal.RunTimeout):
                    s.compute(add(hangs(1), hangs(2)), timeout=1.5)
            else:
                with pytest.raises(shoal.TaskError, match="boom"):
                    s.compute(add(hangs(1), fails.options(retries=0)(2)), timeout=60)
        # Two hung runs held both slots for good before; now the next run gets them.
        assert s.compute(tree(7), timeout=60) == evaluate(tree(7))
    assert leaked_keys(server.url) == []


@shoal.task
def fails(x: int) -> int:
    raise ValueError(f"boom {x}")


def test_the_progress_line_names_a_task_that_runs_long() -> None:
    p = RunProgress(3, "run x", enabled=False)
    p({"type": "TASK_STARTED", "task": "1", "name": "quick"})
    p({"type": "TASK_STARTED", "task": "2", "name": "slow"})
    p({"type": TaskCompleted.type, "task": "1"})
    assert p.line() == "run x"  # nothing runs long yet
    _, t0 = p.running["2"]
    assert p.long_running(now=t0 + LONG_TASK_S + 2) == [("slow", LONG_TASK_S + 2)]
    p.running["2"] = ("slow", time.monotonic() - 42)
    p({})  # a tick: time passed without events
    assert p.line().startswith("run x · running slow for 42 s")
    p({"type": "TASK_FAILED", "task": "2"})
    assert p.line() == "run x"


def test_the_progress_bar_shows_on_a_terminal_and_in_jupyter_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Off when stderr is not a terminal (a pipe, a log), unless rich sees a notebook, where it
    draws the bar as a widget."""
    from types import SimpleNamespace

    def console(jupyter: bool) -> object:
        return lambda: SimpleNamespace(is_jupyter=jupyter)

    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    monkeypatch.setattr("rich.get_console", console(False))
    assert RunProgress(3, "x").enabled is False
    monkeypatch.setattr("rich.get_console", console(True))
    assert RunProgress(3, "x").enabled is True
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.setattr("rich.get_console", console(False))
    assert RunProgress(3, "x").enabled is True
    assert RunProgress(3, "x", enabled=False).enabled is False


@shoal.task
def gate(fifo: str) -> int:
    with open(fifo) as f:  # blocks until the test writes
        return int(f.read())


def test_frames_wait_on_the_server_not_in_the_pool_managers_memory(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    """The manager takes only as many invocations as it has free slots, plus a few in hand
    per slot (``prefetch``): the rest stay on the server's list. (One slot: a run's roots go
    to one worker, so the 40 invocations are 40 runs.)"""
    fifo = str(tmp_path / "gate")
    os.mkfifo(fifo)
    backend = LocalProcesses(max_workers=1)
    with shoal.Session(redis_url=server.url, backend=backend, progress=False) as s:
        run = s.submit(gate(fifo))
        wait_for_progress(server.url, run.id, TASK_STARTED=1)  # the gate holds the one slot
        rest = [s.submit(add(i)) for i in range(40)]
        assert backend._pool is not None
        pool = backend._pool
        deadline = time.monotonic() + 30  # the manager tops up its hand as the frames arrive
        while pool._placing < pool.prefetch and time.monotonic() < deadline:
            time.sleep(0.01)
        r = redis.Redis.from_url(server.url)
        waiting = r.llen(keys.pool_queue(backend.pool_id))
        events_ttl, meta_ttl = r.ttl(keys.events(run.id)), r.ttl(keys.meta(run.id))
        r.close()
        assert waiting == 40 - pool.prefetch  # in hand: those for the slot the gate holds
        assert pool._placing == pool.prefetch
        # The stream outlives the other keys by its own TTL, even if no client cleans up.
        assert events_ttl >= meta_ttl + keys.EVENTS_TTL_S - 5
        Path(fifo).write_text("5")
        assert run.result(timeout=60) == (5,)
        assert [r.result(timeout=60) for r in rest] == [(i,) for i in range(40)]


@shoal.task
def naps(s: float) -> float:
    time.sleep(s)
    return s


def test_closing_a_session_tells_the_threads_still_waiting_on_it(server: EmbeddedServer) -> None:
    """A close from one thread while another waits for a run: the waiter hears why (it does
    not hang), and the session takes no more calls."""
    s = shoal.Session(redis_url=server.url, backend=LocalProcesses(1), progress=False)
    run = s.submit(naps(30.0))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(run.result, 60)
        wait_for_progress(server.url, run.id, TASK_STARTED=1)
        s.close()
        with pytest.raises(shoal.ShoalError, match="closed"):
            waiting.result(timeout=30)
    with pytest.raises(shoal.ConfigError, match="closed"):
        s.compute(add(3))
