"""End to end on a real server with worker processes: the shapes of the runtime issue, each
checked against the reference evaluator, and after each run nothing left but its event stream."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shoal
from conftest import assert_no_leaks
from reference import evaluate
from shoal.backends.local import LocalProcesses
from shoal.events import TaskCompleted, TaskStarted, WorkerExited, decode
from shoal.graph import freeze
from test_random_dags import dags


@shoal.task
def leaf(i: int) -> int:
    return (i * 7919) % 1000


@shoal.task
def add(x: Any, y: Any) -> Any:
    return x + y


@shoal.task
def total(xs: list[Any]) -> Any:
    return sum(xs)


@shoal.task
def scale(x: Any, k: int) -> Any:
    return x * k


def tree(xs: list[shoal.Node[Any]]) -> shoal.Node[Any]:
    while len(xs) > 1:
        xs = [add(xs[i], xs[i + 1]) for i in range(0, len(xs), 2)]
    return xs[0]


@pytest.fixture(scope="module")
def session(redis_url: str) -> Iterator[shoal.Session]:
    with shoal.Session(
        redis_url=redis_url, backend=LocalProcesses(max_workers=2), progress=False
    ) as s:
        yield s


@pytest.fixture(autouse=True)
def no_leaks(redis_url: str) -> Iterator[None]:
    yield
    assert_no_leaks(redis_url)


def check(session: shoal.Session, *nodes: shoal.Node[Any], **kw: Any) -> None:
    assert session.compute(*nodes, **kw) == evaluate(*nodes)


def test_tree_reduction_of_1024_leaves(session: shoal.Session) -> None:
    check(session, tree([leaf(i) for i in range(1024)]))


def test_fan_out_fan_in_1000(session: shoal.Session) -> None:
    root = leaf(3)
    check(session, total([scale(root, k) for k in range(1000)]))


def test_diamond(session: shoal.Session) -> None:
    top = leaf(1)
    check(session, add(scale(top, 2), scale(top, 3)))


def test_several_outputs_and_a_repeated_one(session: shoal.Session) -> None:
    a = leaf(5)
    b = add(a, leaf(6))
    check(session, a, b, scale(b, 2), b)


def test_every_nesting_form(session: shoal.Session) -> None:
    xs = [leaf(i) for i in range(6)]

    @shoal.task
    def unpack(
        d: dict[str, Any], t: Any, s: Any, fs: Any, *, kw: dict[str, Any]
    ) -> tuple[int, int, int, list[int], list[int], int]:
        return (
            sum(sum(row) for row in d["rows"]),
            d["one"],
            sum(t),
            sorted(s),
            sorted(fs),
            kw["deep"][0][0],
        )

    node = unpack(
        {"rows": [[xs[0], xs[1]], [xs[2]]], "one": xs[3]},
        (xs[4], xs[4]),
        {xs[5], 7},
        frozenset([xs[1], 8]),
        kw={"deep": [[xs[2]]]},
    )
    check(session, node)


def test_an_explicit_pinned_assignment_uses_the_inboxes(session: shoal.Session) -> None:
    """Alternate levels of a tree between two pinned workers, leave some tasks flexible."""
    out = tree([leaf(i) for i in range(32)])
    n = len(freeze([out]).graph)
    assignment = {t: t % 2 for t in range(n) if t % 3}
    run = session.submit(out, plan=assignment)
    assert run.result(timeout=60) == evaluate(out)
    # Each pinned worker says where its time went when it leaves (maybe after RUN_COMPLETED).
    exited = workers_exited(session, run.id, 2)
    assert sorted(e.worker_id for e in exited if e.worker_id is not None) == [0, 1]
    for e in exited:
        assert e.reason == "no more work" and e.worker.endswith(f"/w{e.worker_id}")
        assert e.tasks == sum(1 for w in assignment.values() if w == e.worker_id)
        assert e.busy_s >= 0 and e.parked_s >= 0


@settings(max_examples=20)
@given(dags(max_tasks=25), st.data())
def test_random_dags_with_random_pinning(
    session: shoal.Session, outs: list[shoal.Node[Any]], data: st.DataObject
) -> None:
    n = len(freeze(outs).graph)
    assignment = {t: w for t in range(n) if (w := data.draw(st.integers(-1, 2))) >= 0}
    assert session.compute(*outs, plan=assignment) == evaluate(*outs)


def test_ten_runs_submitted_concurrently_do_not_interfere(session: shoal.Session) -> None:
    graphs = [total([scale(leaf(r), k) for k in range(40)]) for r in range(10)]
    runs = [session.submit(g) for g in graphs]
    assert len({r.id for r in runs}) == 10
    for run, g in zip(reversed(runs), reversed(graphs), strict=True):
        assert run.result(timeout=60) == evaluate(g)


@pytest.mark.slow
def test_ten_sessions_in_threads_on_one_server(redis_url: str) -> None:
    """Ten clients at once (each with its own pool), one server."""
    results: dict[int, tuple[Any, Any]] = {}

    def client(r: int) -> None:
        node = tree([scale(leaf(i), r) for i in range(16)])
        with shoal.Session(redis_url=redis_url, backend=LocalProcesses(1), progress=False) as s:
            results[r] = (s.compute(node)[0], evaluate(node)[0])

    threads = [threading.Thread(target=client, args=(r,)) for r in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 10
    assert all(got == want for got, want in results.values())


def test_run_events_carry_timings_and_start_kinds(session: shoal.Session) -> None:
    node = tree([leaf(i) for i in range(8)])
    run = session.submit(node)
    assert run.result(timeout=60) == evaluate(node)
    events = list(run.events())
    kinds = Counter(e.type for e in events)
    assert kinds["RUN_SUBMITTED"] == 1 and kinds["RUN_COMPLETED"] == 1
    assert kinds["TASK_STARTED"] == kinds["TASK_COMPLETED"] == 15
    done = [e for e in events if isinstance(e, TaskCompleted)]
    for e in done:
        assert e.end is not None and e.start is not None and e.end >= e.start > 0
        assert e.input_bytes >= 0 and e.fetch_s >= 0
        assert e.inputs_fetched + e.inputs_local == (0 if e.name == "leaf" else 2)
        assert e.worker and e.name in ("leaf", "add")
        assert e.fn == f"{__name__}:{e.name}" and len(e.fn_hash) == 32
        # Stamped by the store when it recorded the completion, after the function returned.
        assert e.stored_at is not None and e.stored_at >= e.end
    # Every task started before it completed, on the stream's order.
    order = [(e.type, e.task) for e in events if isinstance(e, TaskStarted | TaskCompleted)]
    for task in {t for _, t in order}:
        assert order.index(("TASK_STARTED", task)) < order.index(("TASK_COMPLETED", task))
    starts = [e for e in events if isinstance(e, TaskStarted) and e.start_kind is not None]
    assert starts and {e.start_kind for e in starts} <= {"cold", "warm"}
    assert all(e.start_latency_s is not None and e.start_latency_s >= 0 for e in starts)
    assert all(e.subdag_bytes is not None and e.subdag_bytes > 0 for e in starts)
    # Pinned workers (the planner's) send WORKER_EXITED, possibly after RUN_COMPLETED, where
    # run.events() stops; flexible ones none (their time is their tasks').
    pinned = {e.worker for e in starts if e.worker_id is not None}
    assert kinds["WORKER_EXITED"] <= len(pinned)
    # The makespan, on the server's clock: submission to completion.
    submitted, completed = events[0], next(e for e in events if e.type == "RUN_COMPLETED")
    assert submitted.type == "RUN_SUBMITTED" and completed.at >= submitted.at > 0


def workers_exited(
    session: shoal.Session, run_id: str, n: int, deadline_s: float = 10.0
) -> list[WorkerExited]:
    """The run's WORKER_EXITED records once there are ``n`` (a bounded wait on the stream)."""
    after = "0"
    found: list[WorkerExited] = []
    end = time.monotonic() + deadline_s
    while len(found) < n:
        left = end - time.monotonic()
        assert left > 0, f"{len(found)} of {n} workers reported their exit"
        for entry_id, fields in session._run(session.storage.read_events(run_id, after, left)):
            after = entry_id
            ev = decode(fields, entry_id)
            if isinstance(ev, WorkerExited):
                found.append(ev)
    return found


def test_each_shared_task_runs_once(session: shoal.Session) -> None:
    shared = leaf(1)
    a, b = add(shared, 1), add(shared, 2)
    run = session.submit(a, b)
    assert run.result(timeout=60) == evaluate(a, b)
    ran = Counter(e.name for e in run.events() if isinstance(e, TaskCompleted))
    assert ran == {"leaf": 1, "add": 2}


def test_a_failing_task_raises_with_the_remote_traceback(session: shoal.Session) -> None:
    @shoal.task
    def boom(x: int) -> int:
        raise KeyError(f"no {x}")

    with pytest.raises(shoal.TaskError) as info:
        session.compute(add(boom(3), leaf(1)))
    assert info.value.exc_type == "KeyError"
    assert "raise KeyError" in info.value.traceback
    assert "test_distributed.py" in info.value.traceback


def test_memory_limit_is_enforced(session: shoal.Session) -> None:
    @shoal.task(memory_mb=400)
    def hog() -> int:
        return len(bytearray(800 * 1024 * 1024))

    with pytest.raises(shoal.TaskError) as info:
        session.compute(hog())
    assert info.value.exc_type == "MemoryError"


def test_functions_from_the_users_script_travel_by_value(
    session: shoal.Session, tmp_path: Path
) -> None:
    """A task defined in a file the workers cannot import, using a helper function and a class
    from that file, still runs there."""
    import importlib.util

    path = tmp_path / "my_private_module.py"
    path.write_text(
        "import shoal\n"
        "def helper(x):\n    return 3 * x\n"
        "class Box:\n    def __init__(self, v):\n        self.v = v\n"
        "@shoal.task\ndef triple(x):\n    return Box(helper(x)).v\n"
    )
    spec = importlib.util.spec_from_file_location("my_private_module", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    import sys

    sys.modules["my_private_module"] = mod
    try:
        assert session.compute(mod.triple(leaf(1))) == (3 * 919,)
    finally:
        del sys.modules["my_private_module"]
