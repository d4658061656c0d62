"""Tasks that end their worker's process, and work a platform loses (DESIGN §6): a crash counts
an attempt in the store, a task that crashes its workers too often fails the run by name, and
an invocation lost before its first task starts is recovered from its hand-off lease.

Each test runs on a real server with worker processes, with the pool's own requeueing (the
default) and without it (leases alone, as on a remote platform)."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import shoal
from conftest import leaked_keys
from reference import evaluate
from shoal.backends import LocalProcesses
from shoal.backends.base import Resources
from shoal.config import Settings
from shoal.events import TaskCrashed, WorkerLost
from shoal.server import EmbeddedServer
from test_faults import random_graph, wait_for_progress

#: Short leases: a lost worker is noticed within a second.
FAST = Settings.from_env(lease_ttl_s=0.6)
FAULT_RUNS = int(os.environ.get("SHOAL_FAULT_RUNS", "5"))
REQUEUE = pytest.mark.parametrize("requeue", [True, False], ids=["requeue", "leases-only"])


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer() as s:
        yield s


def session(url: str, requeue: bool, **settings: Any) -> shoal.Session:
    backend = LocalProcesses(max_workers=2, requeue_dead=requeue)
    return shoal.Session(
        redis_url=url,
        backend=backend,
        settings=Settings.from_env(lease_ttl_s=0.6, **settings),
        progress=False,
    )


@shoal.task
def add(*xs: int) -> int:
    return sum(xs)


@shoal.task
def exits_hard(x: int) -> int:
    os._exit(1)


@shoal.task
def segfaults(x: int) -> int:
    os.kill(os.getpid(), signal.SIGSEGV)
    return x


@shoal.task
def aborts(x: int) -> int:
    os.abort()


@shoal.task
def kills_itself(x: int) -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return x


#: Task name -> (task, how its worker's death reads).
ENDINGS: dict[str, tuple[Any, str]] = {
    "exits_hard": (exits_hard, "exit code 1"),
    "segfaults": (segfaults, "killed by SIGSEGV"),
    "aborts": (aborts, "killed by SIGABRT"),
    "kills_itself": (kills_itself, "killed by SIGKILL"),
}


def starting(run: shoal.Run) -> list[TaskCrashed]:
    return [e for e in run.events() if isinstance(e, TaskCrashed)]


@REQUEUE
@pytest.mark.parametrize("name", list(ENDINGS))
def test_a_task_that_ends_its_process_fails_the_run_after_three_crashes(
    server: EmbeddedServer, name: str, requeue: bool
) -> None:
    task, how = ENDINGS[name]
    with session(server.url, requeue) as s:
        run = s.submit(add(task(1), add(2)))
        with pytest.raises(shoal.TaskError) as err:
            run.result(timeout=60)
        e = err.value
        assert (e.task, e.exc_type) == (name, "WorkerCrashed")
        assert f"crashed its worker 3 times ({how} x3)" in e.message
        crashes = starting(run)
        assert [(c.how, c.crashes) for c in crashes] == [(how, n) for n in (1, 2, 3)]
        assert len({c.task for c in crashes}) == 1
    assert leaked_keys(server.url) == []


def test_retries_raise_the_crash_bound_and_the_setting_lowers_it(server: EmbeddedServer) -> None:
    with session(server.url, True) as s:
        run = s.submit(exits_hard.options(retries=4)(1))
        with pytest.raises(shoal.TaskError, match="crashed its worker 5 times"):
            run.result(timeout=60)
        assert len(starting(run)) == 5
    with session(server.url, True, crash_attempts=1) as s:
        run = s.submit(exits_hard(1))
        with pytest.raises(shoal.TaskError, match="crashed its worker 1 times"):
            run.result(timeout=60)
        assert len(starting(run)) == 1


@shoal.task
def dies_once(marker: str, x: int) -> int:
    if not os.path.exists(marker):
        Path(marker).touch()
        os._exit(3)
    return x * 10


@REQUEUE
def test_a_task_that_crashed_once_is_run_again_and_its_result_is_kept(
    server: EmbeddedServer, tmp_path: Path, requeue: bool
) -> None:
    with session(server.url, requeue) as s:
        run = s.submit(add(dies_once(str(tmp_path / "died"), 4), add(1)))
        assert run.result(timeout=60) == (41,)
        assert [(c.how, c.crashes) for c in starting(run)] == [("exit code 3", 1)]
    assert leaked_keys(server.url) == []


class LosesInvocations:
    """A platform that accepts the first ``lose`` invocations the client hands it and never
    runs them (an HTTP 202 for a request that then dies, a queue that drops a message)."""

    def __init__(self, inner: LocalProcesses, lose: int) -> None:
        self.inner, self.left = inner, lose
        self.name, self.capabilities = inner.name, inner.capabilities
        self.lost: list[bytes] = []

    async def invoke_many(self, items: Sequence[tuple[bytes, Resources | None]]) -> None:
        kept = list(items)
        while kept and self.left > 0:
            self.lost.append(kept.pop(0)[0])
            self.left -= 1
        await self.inner.invoke_many(kept)

    async def invoke(self, invocation: bytes, resources: Resources | None) -> None:
        await self.invoke_many([(invocation, resources)])

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("lose", [1, 3])
def test_a_backend_that_loses_the_first_invocations_still_gives_the_result(
    server: EmbeddedServer, lose: int
) -> None:
    backend = LosesInvocations(LocalProcesses(max_workers=2, requeue_dead=False), lose)
    xs = [add(i, 1) for i in range(3)]
    outs = [add(*xs), xs[0]]
    with shoal.Session(redis_url=server.url, backend=backend, settings=FAST, progress=False) as s:
        run = s.submit(*outs)
        assert run.result(timeout=60) == evaluate(*outs)
        assert len(backend.lost) == lose
        lost = [e.lease for e in run.events() if isinstance(e, WorkerLost)]
        assert len(lost) == lose and all(m.startswith("ht") for m in lost)
    assert leaked_keys(server.url) == []


def a_busy_process(backend: LocalProcesses, rng: random.Random) -> int | None:
    """Any process holding an invocation: starting, fetching, running or completing."""
    pool = backend._pool
    assert pool is not None
    with pool._cond:
        busy = [p.popen.pid for p in pool._procs if p.alive and p.busy and not p.parked]
    return rng.choice(busy) if busy else None


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("seed", range(FAULT_RUNS))
def test_random_kills_without_requeueing_all_finish_correctly(
    server: EmbeddedServer, seed: int
) -> None:
    """Kills at random moments, new workers' first milliseconds included (an invocation
    received and not started), with no redelivery by the pool: the leases alone recover."""
    rng = random.Random(seed)
    backend = LocalProcesses(max_workers=2, requeue_dead=False)
    outs = random_graph(seed, n=150)
    with shoal.Session(redis_url=server.url, backend=backend, settings=FAST, progress=False) as s:
        run = s.submit(*outs)
        wait_for_progress(server.url, run.id, TASK_STARTED=1)
        for _ in range(3):
            time.sleep(rng.uniform(0.0, 0.3))  # the fault's timing is what is random here
            pid = a_busy_process(backend, rng)
            if pid is not None:
                # The pick races the pool: the process may have died (an earlier kill) and
                # been reaped already, its slot not yet cleared.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        assert run.result(timeout=120) == evaluate(*outs)
        crashes = Counter(c.task for c in starting(run))
        assert all(n < 3 for n in crashes.values())
    assert leaked_keys(server.url) == []


def test_a_memory_limit_too_small_to_run_is_a_task_error_naming_it(server: EmbeddedServer) -> None:
    with session(server.url, True) as s, pytest.raises(shoal.TaskError) as err:
        s.compute(add.options(memory_mb=8)(1, 2), timeout=60)
    assert err.value.task == "add"
    assert "memory_mb=8 is too small" in err.value.message and err.value.exc_type == "MemoryError"
    assert leaked_keys(server.url) == []
