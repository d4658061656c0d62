"""No write re-creates a key of an ended run (issue 12, item 6): failed runs whose fan-out
stragglers are still running when the client cleans up leave no key without a TTL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

import shoal
from conftest import leaked_keys
from shoal.backends import LocalProcesses
from shoal.config import Settings
from shoal.server import EmbeddedServer


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer() as s:
        yield s


@shoal.task
def source(seed: int) -> int:
    return seed


@shoal.task
def middle(x: int) -> int:
    return x


@shoal.task
def fails(x: int) -> int:
    raise ValueError(f"run {x} fails")


@shoal.task
def leaf(x: int, i: int) -> int:
    return x + i


@shoal.task
def gather(*xs: int) -> int:
    return sum(xs)


def failing_run(seed: int, width: int) -> shoal.Node[Any]:
    """``middle`` stays on the source's worker and fans out ``width`` leaves, storing each
    leaf's subDAG as it hands it on, while ``fails`` (handed to the other worker) fails the
    run: the client cleans up while those stores are still coming."""
    src = source(seed)
    mid = middle(src)
    return gather(fails(src), *[leaf(mid, i) for i in range(width)])


def keys_without_ttl(url: str) -> list[str]:
    r = redis.Redis.from_url(url, decode_responses=True)
    try:
        return sorted(k for k in r.scan_iter("shoal:*") if r.ttl(k) == -1)
    finally:
        r.close()


RUNS = 100


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_hundred_failed_runs_with_stragglers_leave_no_key_without_a_ttl(
    server: EmbeddedServer,
) -> None:
    # Small subDAG limit: every leaf's subDAG is stored, not sent inline (the write that used
    # to re-create the run's subDAG hash after cleanup; 7 of 20 runs left one before the fix).
    settings = Settings.from_env(inline_subdag_limit=64)
    backend = LocalProcesses(max_workers=2)
    with shoal.Session(
        redis_url=server.url, backend=backend, settings=settings, progress=False
    ) as s:
        for run in range(RUNS):
            with pytest.raises(shoal.TaskError, match=f"run {run} fails"):
                s.compute(failing_run(run, 300), timeout=60)
    # Every worker has finished with the runs once the session is closed.
    assert keys_without_ttl(server.url) == []
    assert leaked_keys(server.url) == []  # and of the runs only their event streams are left
