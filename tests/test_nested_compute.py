"""A task that computes a graph of its own (issue 13): its ``compute()`` goes to its worker's
store and platform, not to a second embedded server and pool inside the worker; nesting deeper
than the pool is wide does not deadlock; an inner failure is the task's failure, of its type."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

import shoal
from conftest import session_for


@shoal.task
def square(x: int) -> int:
    return x * x


@shoal.task
def sum_of_squares(n: int) -> tuple[int, bool]:
    """Computes a graph of its own; says whether that made a new default session in this
    process (the embedded server and pool a bare compute() outside a task would start)."""
    import shoal.session

    before = shoal.session._default_session
    values = shoal.compute(*[square(i) for i in range(n)])
    return sum(values), shoal.session._default_session is not before


@shoal.task
def nested(depth: int) -> int:
    if depth == 0:
        return 1
    return 1 + nested(depth - 1).compute()


@shoal.task
def fails_inside() -> int:
    return square.func(2) + shoal.compute(lookup("absent"))[0]


@shoal.task
def lookup(key: str) -> int:
    return {"present": 1}[key]


@pytest.fixture
def processes(redis_url: str) -> Iterator[shoal.Session]:
    with session_for("processes", redis_url, workers=1) as s:
        yield s


def streams(url: str) -> set[str]:
    r = redis.Redis.from_url(url, decode_responses=True)
    try:
        return set(r.scan_iter("shoal:{*}:events"))
    finally:
        r.close()


def test_a_tasks_compute_runs_on_its_workers_server(
    processes: shoal.Session, redis_url: str
) -> None:
    before = streams(redis_url)
    assert processes.compute(sum_of_squares(5), timeout=60) == ((30, False),)
    assert len(streams(redis_url) - before) == 2  # the task's run is on this server too


def test_nesting_deeper_than_the_pool_is_wide_finishes(processes: shoal.Session) -> None:
    """One process in the pool, four runs nested in each other: each waiting task is parked,
    so the pool starts a process for the run it waits for."""
    assert processes.compute(nested(3), timeout=90) == (4,)


def test_an_inner_failure_fails_the_task_with_its_type(processes: shoal.Session) -> None:
    with pytest.raises(KeyError) as info:
        processes.compute(fails_inside(), timeout=60)
    assert isinstance(info.value, shoal.TaskError) and info.value.task == "fails_inside"
    assert info.value.args == ("absent",)


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_a_tasks_compute_in_process(scheduler: str) -> None:
    assert shoal.compute(nested(2), scheduler=scheduler) == (3,)
    assert shoal.compute(sum_of_squares(4), scheduler=scheduler) == ((14, False),)
