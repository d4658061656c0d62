"""A server at its maxmemory (issue 12, item 4): a refused write fails the run with a
StorageError naming maxmemory, never a hang, and a raw redis-py exception never reaches the user.
The failure report itself still gets through (its script may write when the server is full)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

import shoal
from conftest import leaked_keys
from shoal.backends import InProcess, LocalProcesses
from shoal.server import EmbeddedServer


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer() as s:  # its own: the test fills it up
        yield s


@pytest.fixture
def full(server: EmbeddedServer) -> Iterator[redis.Redis]:
    """A client to the server that resets its maxmemory after the test."""
    r = redis.Redis.from_url(server.url)
    r.config_set("maxmemory-policy", "noeviction")
    yield r
    r.config_set("maxmemory", 0)
    r.close()


def fill(r: redis.Redis) -> None:
    """Every write that may grow memory is refused from now on."""
    r.config_set("maxmemory", 1)


@shoal.task
def once_full(url: str) -> int:
    """Waits (inside the task, reading only) until the server has been filled."""
    r = redis.Redis.from_url(url, decode_responses=True)
    deadline = time.monotonic() + 30
    while r.config_get("maxmemory")["maxmemory"] == "0" and time.monotonic() < deadline:
        time.sleep(0.01)
    return 100_000


@shoal.task
def big(n: int) -> bytes:
    return b"x" * n


@shoal.task
def add(x: int, y: int) -> int:
    return x + y


def session(server: EmbeddedServer, backend: str) -> shoal.Session:
    if backend == "processes":
        return shoal.Session(
            redis_url=server.url, backend=LocalProcesses(max_workers=2), progress=False
        )
    return shoal.Session(redis_url=server.url, backend=InProcess(threads=True), progress=False)


@pytest.mark.parametrize("backend", ["inprocess", "processes"])
def test_a_server_that_fills_up_mid_run_fails_the_run_naming_maxmemory(
    server: EmbeddedServer, full: redis.Redis, backend: str
) -> None:
    with session(server, backend) as s:
        assert s.compute(add(1, 2)) == (3,)  # warm, before the server is full
        # The next task starts on a full server: its start (an event, a lease) is refused.
        run = s.submit(big(once_full(server.url)))
        fill(full)
        with pytest.raises(
            shoal.StorageError, match="is full: it refuses writes past its maxmemory"
        ):
            run.result(timeout=60)
        full.config_set("maxmemory", 0)
        assert s.compute(add(2, 3)) == (5,)  # the session goes on once there is room again
    assert leaked_keys(server.url) == []


def test_submitting_to_a_full_server_is_a_storage_error_not_a_raw_one(
    server: EmbeddedServer, full: redis.Redis
) -> None:
    with session(server, "inprocess") as s:
        assert s.compute(add(1, 2)) == (3,)
        fill(full)
        with pytest.raises(shoal.StorageError, match="maxmemory") as err:
            big = b"a large argument " * 10_000
            s.compute(add(big, b""), timeout=30)  # type: ignore[arg-type]  # bytes add too
        assert not isinstance(err.value, redis.RedisError)
        assert err.value.__cause__ is not None and "maxmemory" in str(err.value.__cause__)
