"""The decorator API of DESIGN §2: tasks, nodes, options, compute, errors."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

import shoal
from reference import evaluate


@shoal.task
def add(x: Any, y: Any) -> Any:
    return x + y


@shoal.task(retries=3, memory_mb=1024, timeout_s=60)
def load(path: str) -> str:
    return f"loaded {path}"


@shoal.task
def boom(x: int) -> int:
    raise ValueError(f"bad value {x}")


def test_calling_a_task_is_lazy() -> None:
    calls: list[int] = []

    @shoal.task
    def record(x: int) -> int:
        calls.append(x)
        return x

    n = record(1)
    assert isinstance(n, shoal.Node)
    assert calls == []
    assert n.compute(scheduler="sync") == 1
    assert calls == [1]


def test_design_example(scheduler: str) -> None:
    n = add(add(1, 2), add(3, 4))
    assert n.compute(scheduler=scheduler) == 10 == evaluate(n)[0]


def test_decorator_with_options_records_them() -> None:
    assert load.opts == shoal.TaskOptions(retries=3, memory_mb=1024, timeout_s=60)
    assert load("a").compute(scheduler="sync") == "loaded a"


def test_options_returns_a_new_factory_and_leaves_the_original() -> None:
    faster = add.options(retries=5, name="plus")
    assert faster is not add
    assert faster.opts.retries == 5 and add.opts.retries == 0
    node = faster(1, 2)
    assert node.name == "plus"
    assert node.compute(scheduler="sync") == 3


def test_compute_several_outputs_share_one_graph(scheduler: str) -> None:
    calls: list[int] = []

    @shoal.task
    def once(x: int) -> int:
        calls.append(x)
        return x * 10

    shared = once(1)
    a, b = add(shared, 1), add(shared, 2)
    assert shoal.compute(a, b, scheduler=scheduler) == (11, 12)
    # Worker processes run a copy of the function: the in-process list stays empty there
    # (test_distributed counts the executions from the run's events instead).
    assert calls == ([] if scheduler == "processes" else [1])


def test_same_node_twice_as_output(scheduler: str) -> None:
    n = add(1, 2)
    assert shoal.compute(n, n, add(n, n), scheduler=scheduler) == (3, 3, 6)


def test_compute_with_no_nodes_returns_empty_tuple() -> None:
    assert shoal.compute(scheduler="sync") == ()


def test_reprs_are_useful() -> None:
    assert repr(add) == "<shoal.task add>"
    assert "retries=3" in repr(load) and "memory_mb=1024" in repr(load)
    assert repr(add(1, add(2, 3))) == "<shoal.Node add(1, <add>)>"
    assert "..." in repr(add("x" * 100, 1))


def test_computing_something_that_is_not_a_node() -> None:
    with pytest.raises(shoal.UsageError, match="expects Nodes.*got int"):
        shoal.compute(3, scheduler="sync")  # type: ignore[call-overload]


def test_unknown_option_is_a_clear_error() -> None:
    with pytest.raises(shoal.ShoalError, match="unknown task option.*'retry'.*valid options"):
        add.options(retry=2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"retries": -1}, "retries must be an integer >= 0"),
        ({"retries": "3"}, "retries must be an integer"),
        ({"memory_mb": 0}, "memory_mb must be an integer >= 1"),
        ({"timeout_s": 0}, "timeout_s must be a positive number"),
        ({"timeout_s": float("nan")}, "timeout_s must be a positive number"),
        ({"name": ""}, "name must be a non-empty string"),
        ({"name": "bad\udcff"}, "name must be valid text"),  # a lone surrogate
    ],
)
def test_bad_option_values(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(shoal.UsageError, match=match):
        shoal.task(**kwargs)(lambda: 1)


def test_task_needs_a_callable() -> None:
    with pytest.raises(shoal.UsageError, match="needs a callable"):
        shoal.task("not a function")  # type: ignore[call-overload]


def test_unknown_scheduler() -> None:
    with pytest.raises(shoal.ConfigError, match="unknown scheduler 'fast'"):
        add(1, 2).compute(scheduler="fast")


def test_session_and_scheduler_together_is_an_error() -> None:
    with shoal.Session() as s, pytest.raises(shoal.ConfigError, match="either"):
        shoal.compute(add(1, 2), scheduler="sync", session=s)


def test_bad_timeout() -> None:
    with pytest.raises(shoal.UsageError, match="timeout must be a positive number"):
        add(1, 2).compute(scheduler="sync", timeout=-1)


def test_a_node_has_no_truth_value_and_cannot_be_iterated() -> None:
    n = add(1, 2)
    with pytest.raises(shoal.ShoalError, match="truth value"):
        bool(n)
    with pytest.raises(shoal.ShoalError, match="cannot be iterated"):
        list(n)


def test_node_inside_an_unsupported_container_is_a_clear_error() -> None:
    class Box:
        def __init__(self, inner: object) -> None:
            self.inner = inner

    @shoal.task
    def unbox(b: Box) -> object:
        return b.inner

    with pytest.raises(shoal.ShoalError, match="argument args\\[0\\] of task 'unbox'") as info:
        unbox(Box(add(1, 2))).compute(scheduler="sync")
    assert "cannot be pickled" in str(info.value.__cause__)


def test_unpicklable_argument_names_task_and_argument() -> None:
    import threading

    @shoal.task
    def use(d: dict[str, Any]) -> int:
        return 1

    with pytest.raises(shoal.ShoalError, match=r"argument args\[0\]\['lock'\] of task 'use'"):
        use({"lock": threading.Lock()}).compute(scheduler="sync")


def test_task_error_carries_the_remote_failure(scheduler: str) -> None:
    with pytest.raises(shoal.TaskError) as info:
        add(boom(7), 1).compute(scheduler=scheduler)
    err = info.value
    assert err.task == "boom"
    assert err.exc_type == "ValueError"
    assert err.message == "bad value 7"
    assert "raise ValueError" in err.traceback
    text = str(err)
    assert "task 'boom' failed: ValueError: bad value 7" in text
    assert "Remote traceback" in text and "raise ValueError" in text


def test_task_error_pickles() -> None:
    err = shoal.TaskError("t", "KeyError", "k", "tb", attempts=3, worker="w1")
    back = pickle.loads(pickle.dumps(err))
    assert (back.task, back.exc_type, back.message, back.traceback, back.attempts, back.worker) == (
        "t",
        "KeyError",
        "k",
        "tb",
        3,
        "w1",
    )
    assert "after 3 attempts" in str(back)


def test_retries_recover_a_flaky_task(scheduler: str) -> None:
    attempts: list[int] = []

    @shoal.task(retries=2)
    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("not yet")
        return "ok"

    assert flaky().compute(scheduler=scheduler) == "ok"
    # In worker processes, the retries happen on the worker's copy of the closure.
    assert len(attempts) == (0 if scheduler == "processes" else 3)


def test_retries_exhausted_reports_attempts() -> None:
    @shoal.task(retries=1)
    def always() -> None:
        raise RuntimeError("never")

    with pytest.raises(shoal.TaskError, match="after 2 attempts") as info:
        always().compute(scheduler="sync")
    assert info.value.attempts == 2


def test_session_is_reusable_and_closes() -> None:
    with shoal.Session() as s:
        assert s.compute(add(1, 2)) == (3,)
        assert s.compute(add(3, 4), add(5, 6)) == (7, 11)
    with pytest.raises(shoal.ConfigError, match="closed"):
        s.compute(add(1, 2))


def test_compute_inside_a_running_event_loop() -> None:
    import asyncio

    async def main() -> Any:
        return add(1, 2).compute(scheduler="sync")

    assert asyncio.run(main()) == 3


def test_public_api_is_explicit() -> None:
    assert set(shoal.__all__) <= set(dir(shoal))
    for name in (
        "task",
        "Node",
        "compute",
        "Session",
        "ShoalError",
        "TaskError",
        "RunTimeout",
        "PayloadError",
        "ConfigError",
    ):
        assert name in shoal.__all__
    assert issubclass(shoal.TaskError, shoal.ShoalError)


@pytest.mark.parametrize("source", [{"a": 1}, 5, "abc", None])
def test_mapping_over_what_is_not_a_list_is_refused_at_once(source: Any) -> None:
    with pytest.raises(shoal.UsageError, match="shoal.map.* maps over a node"):
        shoal.map(add, source)


def test_every_early_refusal_is_a_shoal_error_and_a_type_error() -> None:
    assert issubclass(shoal.UsageError, shoal.ShoalError)
    assert issubclass(shoal.UsageError, TypeError)  # `except TypeError` keeps working


@pytest.mark.parametrize("kind", ["list", "dict", "nested"])
def test_a_cyclic_argument_is_called_a_cycle(kind: str) -> None:
    a: Any
    if kind == "list":
        a = [1]
        a.append(a)
        where = r"args\[0\]\[1\] is args\[0\]"
    elif kind == "dict":
        a = {}
        a["self"] = a
        where = r"args\[0\]\['self'\] is args\[0\]"
    else:
        inner: list[Any] = []
        a = {"k": [inner]}
        inner.append(a["k"])
        where = r"args\[0\]\['k'\]\[0\]\[0\] is args\[0\]\['k'\]"
    with pytest.raises(shoal.ShoalError, match=f"of task 'add' contains itself: {where} again"):
        add(a, 1).compute(scheduler="sync")


def test_a_deeply_nested_argument_names_a_short_path() -> None:
    deep: Any = 1
    for _ in range(200):
        deep = [deep]
    with pytest.raises(shoal.ShoalError, match="nested deeper than 128 levels") as err:
        add(deep, 1).compute(scheduler="sync")
    assert len(str(err.value)) < 200 and "…" in str(err.value)
