"""``Session.persist`` (issue 13): a value computed once and kept on the server for later graphs,
read by the workers that need it (not sent by the client), until released or expired."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

import shoal
from conftest import session_for
from shoal.storage import keys


@shoal.task
def expensive(marker: str, n: int) -> list[int]:
    """Notes each run in the file ``marker`` (the test counts them)."""
    with open(marker, "a") as f:
        f.write("ran\n")
    return [i * i for i in range(n)]


@shoal.task
def total(xs: list[int], extra: int = 0) -> int:
    return sum(xs) + extra


@pytest.fixture(params=["sync", "threads", "processes"])
def session(request: pytest.FixtureRequest, redis_url: str) -> Iterator[shoal.Session]:
    with session_for(request.param, redis_url) as s:
        yield s


def runs(marker: Path) -> int:
    return marker.read_text().count("ran") if marker.exists() else 0


def test_a_persisted_value_serves_later_graphs_without_running_again(
    session: shoal.Session, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    squares = session.persist(expensive(str(marker), 5))
    assert runs(marker) == 1
    assert session.compute(total(squares)) == (30,)
    assert session.compute(total(squares, 1), total(squares, 2)) == (31, 32)
    assert runs(marker) == 1  # computed once
    assert squares.release() is True
    assert squares.release() is False  # gone already


def test_a_released_value_fails_the_graph_that_needs_it_by_name(session: shoal.Session) -> None:
    gone = session.persist(total([1, 2]))
    gone.release()
    with pytest.raises(KeyError, match="persisted value of 'total' .* is gone"):
        session.compute(total([gone]))


def test_another_session_on_the_server_uses_it_and_the_ttl_is_set(
    redis_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    with shoal.Session(redis_url=redis_url, progress=False) as first:
        kept = first.persist(expensive(str(marker), 4), ttl_s=600)
    with shoal.Session(redis_url=redis_url, progress=False) as second:
        assert second.compute(total(kept)) == (14,)
    r = redis.Redis.from_url(redis_url)
    try:
        assert 0 < r.pttl(keys.persisted(kept.id)) <= 600_000
        r.delete(keys.persisted(kept.id))
    finally:
        r.close()
    assert runs(marker) == 1


@pytest.mark.parametrize("ttl", [0, -1, "1", True, None])
def test_a_bad_ttl_is_refused(ttl: object) -> None:
    with shoal.Session.for_scheduler("sync") as s, pytest.raises(shoal.UsageError, match="ttl_s"):
        s.persist(total([1]), ttl_s=ttl)  # type: ignore[arg-type]
