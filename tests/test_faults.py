"""Fault injection on a real server with worker processes: killed workers, duplicate deliveries,
a server restart, flaky and slow tasks, a password-protected server.

CI runs a short version (``SHOAL_FAULT_RUNS`` seeded kill runs, default 5); the full suite of
the failures issue is ``SHOAL_FAULT_RUNS=20 .venv/bin/pytest tests/test_faults.py``.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

import shoal
from conftest import leaked_keys
from reference import evaluate
from shoal.backends import LocalProcesses
from shoal.config import Settings
from shoal.events import TaskRetry, WorkerLost
from shoal.graph import freeze
from shoal.runtime.shares import share_count
from shoal.server import EmbeddedServer
from shoal.signing import seal
from shoal.storage import keys

FAULT_RUNS = int(os.environ.get("SHOAL_FAULT_RUNS", "5"))
#: Short leases so that a dead worker is noticed quickly.
FAST = Settings.from_env(lease_ttl_s=0.6)
#: A stream entry as a client with ``decode_responses=True`` returns it (redis-py types the
#: replies of XREAD and XRANGE for either decoding, so the tests say which one they use).
Entry = tuple[str, dict[str, str]]


@shoal.task
def step(seed: Any, *ups: Any) -> Any:
    time.sleep(0.002 + (seed % 5) / 1000)  # long enough for kills to land mid-task
    acc = seed
    for u in ups:
        acc = (acc * 31 + u) % 1_000_003
    return acc


def random_graph(seed: int, n: int = 200) -> list[shoal.Node[Any]]:
    """``n`` tasks; the outputs are every task nothing else consumes, so all ``n`` run."""
    rng = random.Random(seed)
    nodes: list[shoal.Node[Any]] = []
    consumed: set[int] = set()
    for i in range(n):
        ups = rng.sample(range(i), k=min(i, rng.randint(0, 3))) if i else []
        consumed.update(ups)
        nodes.append(step(i, *[nodes[u] for u in ups]))
    return [nodes[i] for i in range(n) if i not in consumed]


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer() as s:
        yield s


def no_leaks(url: str) -> None:
    assert leaked_keys(url) == []


def busy_worker(backend: LocalProcesses, deadline_s: float = 5.0) -> int:
    pool = backend._pool
    assert pool is not None
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        with pool._cond:
            busy = [p.popen.pid for p in pool._procs if p.alive and p.busy and not p.parked]
        if busy:
            return random.choice(busy)
        time.sleep(0.005)
    raise AssertionError("no busy worker to kill")


def wait_for_progress(url: str, run_id: str, deadline_s: float = 30.0, **at_least: int) -> None:
    """Blocks until the run's stream holds at least that many events of each type (say
    ``TASK_COMPLETED=20``), reading it with XREAD BLOCK: a fault then lands at a known point of
    the run, not after a guessed sleep. The run ending first is an error (the fault would miss)."""
    import redis

    r = redis.Redis.from_url(url, decode_responses=True)
    stream, last, seen = keys.events(run_id), "0", Counter[str]()
    end = time.monotonic() + deadline_s
    try:
        while any(seen[t] < n for t, n in at_least.items()):
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"run {run_id} did not reach {at_least}: {dict(seen)}")
            reply = r.xread({stream: last}, block=max(1, int(left * 1000)))
            for _, entries in cast("list[tuple[str, list[Entry]]] | None", reply) or []:
                for entry_id, ev in entries:
                    last = entry_id
                    seen[ev["type"]] += 1
                    if ev["type"] in ("RUN_COMPLETED", "RUN_FAILED"):
                        raise AssertionError(f"run {run_id} ended before {at_least}")
    finally:
        r.close()


def _running(url: str, run_id: str) -> dict[str, int]:
    """Tasks announced (TASK_STARTED) and not completed yet -> the pid of their worker."""
    import redis

    r = redis.Redis.from_url(url, decode_responses=True)
    try:
        running: dict[str, int] = {}
        for _, ev in cast("list[Entry]", r.xrange(f"shoal:{{{run_id}}}:events")):
            if ev["type"] == "TASK_STARTED":
                running[ev["task"]] = int(ev["worker"].split(":")[1])
            elif ev["type"] in ("TASK_COMPLETED", "MAP_EXPANDED"):
                running.pop(ev["task"], None)
        return running
    finally:
        r.close()


def worker_in_a_task(url: str, run_id: str, deadline_s: float = 5.0) -> int:
    """Stops a worker process that is in a task of the run (it announced one it has not
    completed) and returns its pid, still stopped, for the caller to kill.

    Picking a pid from the stream alone races: by the time of the kill the worker may have
    finished and taken a new invocation, not started yet, which leases alone do not cover (a
    remote platform's redelivery does). Stopped, it cannot move on: if the stream still shows
    it in a task, it is (a completion already in flight leases what it readies); if not, it
    goes on and another is tried."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        candidates = sorted(set(_running(url, run_id).values()))
        if not candidates:
            time.sleep(0.005)
            continue
        pid = random.choice(candidates)
        os.kill(pid, signal.SIGSTOP)
        if pid in _running(url, run_id).values():
            return pid
        os.kill(pid, signal.SIGCONT)
    raise AssertionError("no worker in a task to kill")


@pytest.mark.slow
@pytest.mark.timeout(300)  # up to 120 s per run under load
@pytest.mark.parametrize("requeue", [True, False], ids=["requeue", "leases-only"])
@pytest.mark.parametrize("seed", range(FAULT_RUNS))
def test_sigkill_a_busy_worker_mid_run(server: EmbeddedServer, seed: int, requeue: bool) -> None:
    """A worker process killed in a task: with requeueing (the default) its invocation goes back
    to the queue; with leases alone (as on a remote platform, whose own redelivery covers an
    invocation lost before its first task starts) the expired leases bring its work back. The
    victim is stopped and checked before the kill, so the kill lands mid-invocation."""
    backend = LocalProcesses(max_workers=2, requeue_dead=requeue)
    with shoal.Session(redis_url=server.url, backend=backend, settings=FAST, progress=False) as s:
        outs = random_graph(seed)
        expected = evaluate(*outs)
        run = s.submit(*outs)
        wait_for_progress(server.url, run.id, TASK_COMPLETED=random.Random(seed).randint(0, 60))
        os.kill(worker_in_a_task(server.url, run.id), signal.SIGKILL)
        assert run.result(timeout=120) == expected
        assert backend.stats.died >= 1  # the kill hit a process while it ran an invocation
        # With records written with each completion (the default), the kill lost none: every
        # task that completed has its record in the history.
        history = s.history
        assert history is not None
        recorded = sum(f.count for f in s._run(history.listing()))
        assert recorded == len(freeze(outs).graph)
        assert s.compute(*random_graph(seed + 1000)) == evaluate(*random_graph(seed + 1000))
    no_leaks(server.url)


@shoal.task
def spread(n: int, seed: int) -> list[int]:
    return [(seed * 7 + i) % 97 for i in range(n)]


@shoal.task
def settle(xs: Any) -> Any:
    return sum(xs) % 1_000_003


def map_pipeline(seed: int) -> list[shoal.Node[Any]]:
    """A chain of two maps over a run-time list of 60, gathered twice."""
    first = shoal.map(step, spread(60, seed))
    second = shoal.map(step, first, step(seed))
    return [settle(second), settle(first), second]


@pytest.mark.slow
@pytest.mark.timeout(300)  # up to 120 s per run under load
@pytest.mark.parametrize("requeue", [True, False], ids=["requeue", "leases-only"])
@pytest.mark.parametrize("seed", range(FAULT_RUNS))
def test_sigkill_a_busy_worker_during_a_map(
    server: EmbeddedServer, seed: int, requeue: bool
) -> None:
    """Elements lost with a worker are recovered from their stored items (or recomputed from
    the element before them); the gathers count each element once."""
    backend = LocalProcesses(max_workers=2, requeue_dead=requeue)
    with shoal.Session(redis_url=server.url, backend=backend, settings=FAST, progress=False) as s:
        outs = map_pipeline(seed)
        run = s.submit(*outs)
        done = random.Random(seed).randint(0, 40)  # of 120 elements
        wait_for_progress(server.url, run.id, MAP_EXPANDED=1, TASK_COMPLETED=done)
        victim = busy_worker(backend) if requeue else worker_in_a_task(server.url, run.id)
        os.kill(victim, signal.SIGKILL)
        assert list(run.result(timeout=120)) == list(evaluate(*outs))
    no_leaks(server.url)


@pytest.mark.slow
@pytest.mark.timeout(300)  # up to 120 s per run under load
def test_every_map_invocation_delivered_twice(server: EmbeddedServer) -> None:
    backend = LocalProcesses(max_workers=2, duplicate_deliveries=True)
    with shoal.Session(redis_url=server.url, backend=backend, settings=FAST, progress=False) as s:
        outs = map_pipeline(11)
        run = s.submit(*outs)
        assert list(run.result(timeout=120)) == list(evaluate(*outs))
        kinds = Counter(e.type for e in run.events())
        assert kinds["MAP_EXPANDED"] == 1
        # 4 static tasks, 2 maps completed once each, 120 elements completed once each.
        assert kinds["TASK_COMPLETED"] == 4 + 2 + 120
    no_leaks(server.url)


@pytest.mark.slow
@pytest.mark.timeout(300)  # up to 120 s per run under load
def test_every_invocation_delivered_twice(server: EmbeddedServer) -> None:
    backend = LocalProcesses(max_workers=2, duplicate_deliveries=True)
    # All flexible, so the run starts with the root shares counted below (a planner's pinned
    # workers would be fewer invocations).
    with shoal.Session(
        redis_url=server.url, backend=backend, settings=FAST, progress=False, planner="none"
    ) as s:
        outs = random_graph(7, n=120)
        graph = freeze(outs).graph
        run = s.submit(*outs)
        assert run.result(timeout=120) == evaluate(*outs)
        kinds = Counter(e.type for e in run.events())
        # Every invocation went out twice and each copy reached a process: the duplicates were
        # real. Whether a copy started a task again or found it done is a race (shares make
        # few invocations): either way each task completed once, with the right result.
        import redis

        pool, queue = backend._pool, keys.pool_queue(backend.pool_id)
        assert pool is not None
        r = redis.Redis.from_url(server.url)
        deadline = time.monotonic() + 60  # copies of early shares may still wait their turn
        while (r.llen(queue) or pool.starting()) and time.monotonic() < deadline:
            time.sleep(0.01)
        r.close()
        first = share_count(len(graph.roots()), 2)
        assert backend.stats.invocations % 2 == 0 and backend.stats.invocations >= 2 * first
        assert kinds["TASK_STARTED"] >= kinds["TASK_COMPLETED"] == len(graph)
    no_leaks(server.url)


def test_server_restart_mid_run_gives_a_clear_error_or_the_result() -> None:
    with EmbeddedServer() as srv:
        backend = LocalProcesses(max_workers=2)
        with shoal.Session(redis_url=srv.url, backend=backend, settings=FAST, progress=False) as s:
            outs = random_graph(3, n=200)
            run = s.submit(*outs)
            wait_for_progress(srv.url, run.id, TASK_COMPLETED=20)  # of 200: mid-run
            srv.restart()
            try:
                got = run.result(timeout=60)
            except shoal.ShoalError as e:
                assert "gone from the server" in str(e) or "connect" in str(e).lower()
            else:
                assert got == evaluate(*outs)
            # The session, its pool and its workers carry on with the new server.
            again = random_graph(4, n=50)
            assert s.compute(*again, timeout=60) == evaluate(*again)


def test_flaky_task_with_enough_retries_succeeds(tmp_path: Path) -> None:
    marks = tmp_path / "attempts"

    @shoal.task(retries=2)
    def flaky(path: str) -> str:
        with open(path, "a") as f:
            f.write("x")
        with open(path) as f:
            tries = len(f.read())
        if tries < 3:
            raise ConnectionError("flaky")
        return "ok"

    with shoal.Session(backend=LocalProcesses(1), progress=False) as s:
        run = s.submit(flaky(str(marks)))
        assert run.result(timeout=60) == ("ok",)
        assert marks.read_text() == "xxx"
        assert [e.attempt for e in run.events() if isinstance(e, TaskRetry)] == [1, 2]


def test_flaky_task_without_enough_retries_fails_with_the_remote_traceback() -> None:
    # How soon the client raises (the "within a second") is a latency for benches/;
    # here, no run timeout is set: a client that missed the failure would hang into the
    # test's timeout.
    @shoal.task(retries=1)
    def flaky() -> None:
        raise ConnectionError("still down")

    with (
        shoal.Session(backend=LocalProcesses(1), progress=False) as s,
        pytest.raises(shoal.TaskError) as info,
    ):
        s.compute(flaky())
    err = info.value
    assert err.attempts == 2 and err.exc_type == "ConnectionError"
    assert "raise ConnectionError" in str(err) and "test_faults.py" in str(err)


def test_task_timeout_fails_the_attempt_and_retries(redis_url: str) -> None:
    @shoal.task(timeout_s=0.3, retries=1)
    def stuck() -> None:
        time.sleep(30)  # without the timeout, both attempts would return None: no TaskError

    with shoal.Session(redis_url=redis_url, backend=LocalProcesses(2), progress=False) as s:
        with pytest.raises(shoal.TaskError) as info:
            s.compute(stuck())
        assert info.value.exc_type == "TaskTimeout" and info.value.attempts == 2
        assert "timeout_s=0.3" in info.value.message
        assert s.compute(step(1, 2)) == evaluate(step(1, 2))  # the pool replaced the process
    no_leaks(redis_url)


@pytest.mark.slow
def test_password_protected_server() -> None:
    password = secrets.token_hex(12)
    with EmbeddedServer(password=password) as srv:
        with shoal.Session(redis_url=srv.url, backend=LocalProcesses(1), progress=False) as s:
            assert s.compute(step(1, 2)) == evaluate(step(1, 2))
        bare = srv.url.replace(f":{password}@", "")
        with (
            shoal.Session(redis_url=bare, backend=LocalProcesses(1), progress=False) as s,
            pytest.raises(shoal.ConfigError) as info,
        ):
            s.compute(step(1, 2))
        assert "authenticat" in str(info.value).lower() or "noauth" in str(info.value).lower()
        wrong = srv.url.replace(password, "wrong-password")
        with (
            shoal.Session(redis_url=wrong, backend=LocalProcesses(1), progress=False) as s,
            pytest.raises(shoal.ConfigError) as info,
        ):
            s.compute(step(1, 2))
        assert "wrong-password" not in str(info.value) and ":***@" in str(info.value)


@pytest.mark.slow
@pytest.mark.timeout(300)  # up to 120 s per run under load
def test_the_watchdog_thread_safety_of_concurrent_kills(server: EmbeddedServer) -> None:
    """Two kills in one run, on both processes."""
    backend = LocalProcesses(max_workers=2)
    with shoal.Session(redis_url=server.url, backend=backend, settings=FAST, progress=False) as s:
        outs = random_graph(11)
        run = s.submit(*outs)
        failed: list[BaseException] = []

        def killer() -> None:
            try:
                for completed in (5, 60):  # of 200
                    wait_for_progress(server.url, run.id, TASK_COMPLETED=completed)
                    os.kill(busy_worker(backend), signal.SIGKILL)
            except BaseException as e:  # reported by the test, not lost with the thread
                failed.append(e)

        t = threading.Thread(target=killer)
        t.start()
        assert run.result(timeout=120) == evaluate(*outs)
        t.join()
        assert failed == []
    no_leaks(server.url)


@shoal.task
def slow(x: int, delay: float) -> int:
    time.sleep(delay)
    return x + 1


@pytest.mark.slow
def test_a_killed_pinned_worker_is_reinvoked_and_finds_its_inbox(server: EmbeddedServer) -> None:
    """The pinned worker is killed while parked on its inbox; with the pool's own requeueing
    off (as on a remote platform) only its lease tells: the watchdog re-invokes it by id."""
    backend = LocalProcesses(max_workers=2, requeue_dead=False)
    with shoal.Session(redis_url=server.url, backend=backend, settings=FAST, progress=False) as s:
        first = step(1)  # pinned root: starts the pinned worker
        feeders = [slow(i, 0.4) for i in range(3)]  # flexible, slow
        out = step(2, first, *feeders)  # pinned: waits in the inbox for the feeders
        g = freeze([out]).graph
        pinned = {t: 0 for t in g.task_ids() if g.name(t) == "step"}
        run = s.submit(out, plan=pinned)
        pool = backend._pool
        assert pool is not None
        # The pool's ack reader sets ``parked`` and notifies its condition.
        with pool._cond:
            pool._cond.wait_for(lambda: any(p.alive and p.parked for p in pool._procs), 30)
            parked = [p.popen.pid for p in pool._procs if p.alive and p.parked]
        assert parked, "the pinned worker never parked"
        os.kill(parked[0], signal.SIGKILL)
        assert run.result(timeout=60) == evaluate(out)
        lost = [e for e in run.events() if isinstance(e, WorkerLost)]
        assert any(e.lease == "w0" for e in lost)
    no_leaks(server.url)


def test_an_output_over_the_value_limit_is_refused_with_the_limit_named(redis_url: str) -> None:
    @shoal.task(retries=3)
    def big() -> bytes:
        return os.urandom(50_000)  # incompressible

    settings = Settings.from_env(max_value_bytes=10_000)
    with shoal.Session(
        redis_url=redis_url, backend=LocalProcesses(1), settings=settings, progress=False
    ) as s:
        with pytest.raises(shoal.TaskError) as info:
            s.compute(big())
        assert info.value.exc_type == "OutputTooLarge" and info.value.attempts == 1
        assert "over the single-value limit of 10,000 bytes" in info.value.message
        # A big value that stays on its worker (consumed by the next task there) is fine.
        assert s.compute(step(len_of(big()), 0)) == evaluate(step(len_of(big()), 0))
    no_leaks(redis_url)


@shoal.task
def len_of(b: Any) -> int:
    return len(b)


def test_a_malformed_invocation_is_reported_and_the_worker_goes_on(
    redis_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    with shoal.Session(redis_url=redis_url, backend=LocalProcesses(1), progress=False) as s:
        assert s.compute(step(1, 2)) == evaluate(step(1, 2))
        s._run(s.backend.invoke(b"not an invocation", None))
        signed = seal(b"not an invocation", "invocation")  # signed, still not one
        s._run(s.backend.invoke(signed, None))
        assert s.compute(step(3, 4)) == evaluate(step(3, 4))
    err = capfd.readouterr().err
    assert "invocation refused: an invocation is not signed: refused" in err
    assert "invocation refused: cannot decode invocation: not a shoal invocation" in err


def test_acl_user_in_the_url() -> None:
    password = secrets.token_hex(12)
    with EmbeddedServer(password=password) as srv:
        import redis

        admin = redis.Redis.from_url(srv.url)
        admin.execute_command("ACL", "SETUSER", "shoal", "on", ">s3cret-pw", "~*", "&*", "+@all")
        admin.close()
        url = f"redis://shoal:s3cret-pw@127.0.0.1:{srv.port}/0"
        with shoal.Session(redis_url=url, backend=LocalProcesses(1), progress=False) as s:
            assert s.compute(step(1, 2)) == evaluate(step(1, 2))


@pytest.mark.slow
def test_a_server_that_stays_gone_is_a_clear_error_not_a_hang() -> None:
    srv = EmbeddedServer()
    srv.start()
    try:
        with shoal.Session(redis_url=srv.url, backend=LocalProcesses(2), progress=False) as s:
            outs = random_graph(5)
            run = s.submit(*outs)
            wait_for_progress(srv.url, run.id, TASK_COMPLETED=10)  # of 200: mid-run
            srv.stop()
            # Retried with backoff, then said so: a StorageError, not the RunTimeout that
            # retrying for ever would end in.
            with pytest.raises(shoal.StorageError, match="cannot be reached"):
                run.result(timeout=60)
    finally:
        srv.stop()
