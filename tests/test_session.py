"""Sessions, run handles and the default session: settings, lifetimes and clear errors."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

import shoal
from conftest import assert_no_leaks, leaked_keys
from shoal.backends import InProcess, LocalProcesses
from shoal.storage.memory import MemoryStorage


@shoal.task
def add(x: Any, y: Any) -> Any:
    return x + y


@shoal.task
def held(url: str, started: str, release: str) -> int:
    """Says it started, then returns once the test releases it (bounded: a lost release fails
    the task instead of keeping a worker for ever)."""
    import redis

    r = redis.Redis.from_url(url)
    try:
        r.rpush(started, b"1")
        if r.blpop([release], timeout=60) is None:
            raise TimeoutError("never released")
    finally:
        r.close()
    return 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_workers": 0}, "max_workers must be a positive integer"),
        ({"max_workers": 1.5}, "max_workers must be a positive integer"),
        ({"keep_warm_s": -1}, "keep_warm_s must be >= 0"),
    ],
)
def test_bad_pool_settings_are_named(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(shoal.ConfigError, match=message):
        LocalProcesses(**kwargs)


def test_redis_url_and_storage_together_is_an_error() -> None:
    with pytest.raises(shoal.ConfigError, match="either redis_url= or storage="):
        shoal.Session(redis_url="redis://127.0.0.1:1/0", storage=MemoryStorage())


def test_local_processes_need_a_redis_storage() -> None:
    with (
        shoal.Session(backend=LocalProcesses(1), storage=MemoryStorage()) as s,
        pytest.raises(shoal.ConfigError, match="needs a Redis storage"),
    ):
        s.compute(add(1, 2))


@pytest.mark.slow  # connection retries with backoff
def test_an_unreachable_server_is_named_without_its_password() -> None:
    with (
        shoal.Session(redis_url="redis://:s3cret@127.0.0.1:1/0", progress=False) as s,
        pytest.raises(shoal.ConfigError) as info,
    ):
        s.compute(add(1, 2))
    assert "redis://:***@127.0.0.1:1/0" in str(info.value)
    assert "s3cret" not in str(info.value)


def test_in_memory_session_with_explicit_parts() -> None:
    with shoal.Session(backend=InProcess(threads=True), storage=MemoryStorage()) as s:
        assert s.compute(add(1, 2), add(3, 4)) == (3, 7)
        assert s.redis_url is None
        run = s.submit(add(5, 6))
        assert run.result() == (11,)


def test_run_handle(redis_url: str) -> None:
    with shoal.Session(redis_url=redis_url, backend=LocalProcesses(2), progress=False) as s:
        with pytest.raises(shoal.ConfigError, match="at least one node"):
            s.submit()
        run = s.submit(add(add(1, 2), 3))
        assert "pending" in repr(run) and run.id in repr(run)
        with pytest.raises(TypeError, match="positive number of seconds"):
            run.result(timeout=0)
        assert run.result(timeout=30) == (6,)
        assert run.result() == (6,)  # the outcome is kept; keys were cleaned up once
        types = [e.type for e in run.events()]
        assert types[0] == "RUN_SUBMITTED" and types[-1] == "RUN_COMPLETED"
    assert_no_leaks(redis_url)


def test_run_timeout_then_nothing_leaks_even_when_the_task_finishes_later(redis_url: str) -> None:
    import redis

    r = redis.Redis.from_url(redis_url)
    started, release = f"test:{uuid.uuid4().hex}:started", f"test:{uuid.uuid4().hex}:release"
    with shoal.Session(redis_url=redis_url, backend=LocalProcesses(1), progress=False) as s:
        run = s.submit(add(held(redis_url, started, release), 1))
        assert r.blpop([started], timeout=60) is not None  # the task is running
        with pytest.raises(shoal.RunTimeout, match="did not finish within 0.5 s"):
            run.result(timeout=0.5)  # held until released: only the timeout can end this
        assert leaked_keys(redis_url) == []
        r.rpush(release, b"1")
        # One slot: this run starts once the straggler's process is done, i.e. after the
        # straggler completed against a run that is gone.
        assert s.compute(add(1, 1)) == (2,)
        assert r.exists(release) == 0  # the straggler did take its release
    r.close()
    assert_no_leaks(redis_url)


def test_closing_a_session_cleans_up_runs_never_waited_for(redis_url: str) -> None:
    s = shoal.Session(redis_url=redis_url, backend=LocalProcesses(1), progress=False)
    s.submit(add(1, 2))
    s.close()
    assert_no_leaks(redis_url)
    with pytest.raises(shoal.ConfigError, match="closed"):
        s.compute(add(1, 2))


def test_embedded_server_lives_and_dies_with_its_session() -> None:
    import redis

    with shoal.Session(backend=LocalProcesses(1), progress=False) as s:
        assert s.compute(add(2, 3)) == (5,)
        url = s.redis_url
        assert url is not None and "127.0.0.1" in url
        redis.Redis.from_url(url).ping()
    with pytest.raises(redis.exceptions.ConnectionError):
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
