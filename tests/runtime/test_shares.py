"""Fan-outs and roots in shares: how many, which tasks go together, and who keeps which."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import shoal
from shoal.backends.inprocess import InProcess
from shoal.backends.local import LocalProcesses
from shoal.graph import freeze
from shoal.runtime.machine import Completed, Execute, Executed, Invoke
from shoal.runtime.policy import DefaultPolicy
from shoal.runtime.shares import SHARES_PER_SLOT, share_count, split

from .test_machine import done, f
from .test_policy import machine


@given(
    st.lists(st.integers(0, 10_000), unique=True, max_size=300),
    st.one_of(st.none(), st.integers(1, 64)),
    st.lists(st.sampled_from([None, 256, 1024]), min_size=1, max_size=3),
    st.integers(1, 50),
)
def test_shares_hold_every_task_once_in_order_near_equal_one_size_each(
    tasks: list[int], parallelism: int | None, sizes: list[int | None], at_least: int
) -> None:
    size = {t: sizes[i % len(sizes)] for i, t in enumerate(tasks)}
    shares = split(tasks, parallelism, size.__getitem__, at_least)
    assert sorted(t for s in shares for t in s) == sorted(tasks)
    assert all(shares)
    by_class: dict[int | None, list[list[int]]] = {}
    for s in shares:
        [cls] = {size[t] for t in s}  # one memory size per share
        by_class.setdefault(cls, []).append(s)
    for cls, group in by_class.items():
        members = [t for t in tasks if size[t] == cls]
        assert [t for s in group for t in s] == members  # neighbours together, in order
        assert len(group) == share_count(len(members), parallelism, at_least)
        assert max(map(len, group)) - min(map(len, group)) <= 1
        # Never smaller than the work the invoker has queued (unless there is less work).
        assert len(group) == 1 or min(map(len, group)) >= at_least


def test_share_counts_follow_the_platforms_parallelism() -> None:
    assert share_count(1000, None) == 1000  # no known bound: one worker per task (WUKONG)
    assert share_count(1000, 1) == 1  # one slot: one worker does it all
    assert share_count(1000, 2) == 2 * SHARES_PER_SLOT
    assert share_count(3, 2) == 3
    assert share_count(0, 2) == 0
    assert share_count(1000, 2, at_least=200) == 5  # shares as large as the queued work
    assert share_count(16, 2, at_least=60) == 1  # less than that: all of it stays
    with pytest.raises(ValueError, match="parallelism must be >= 1"):
        DefaultPolicy(0)


def fan(width: int) -> Any:
    src = f(1)
    return freeze([f(src, i) for i in range(width)]).graph


def test_a_flexible_worker_keeps_the_first_share_and_invokes_one_worker_per_other() -> None:
    m = machine(fan(20), DefaultPolicy(parallelism=2), [0])
    m.handle(Executed(0, 1, {}))
    ins = m.handle(Completed(0, done(list(range(1, 21)))))
    invokes = [i for i in ins if isinstance(i, Invoke)]
    # 20 ready tasks, 2 slots: 8 shares of 2 or 3; the first stays here.
    assert [i.start for i in invokes] == [
        [4, 5, 6], [7, 8, 9], [10, 11, 12], [13, 14], [15, 16], [17, 18], [19, 20]
    ]  # fmt: skip
    assert ins[-1] == Execute(1, 1, {0: 1}, [])
    assert list(m.ready) == [2, 3]
    for i in invokes:  # each share's worker gets the subDAG of its tasks (and their input)
        assert i.subdag is not None and sorted(i.subdag.task_ids()) == i.start
        assert list(i.inputs) == [0]


def test_a_worker_with_work_queued_keeps_a_small_fan_out() -> None:
    """A worker with tasks queued hands on no share smaller than its queue: the 4 tasks its
    completion made ready stay with the 5 it has (a block feeding a few products, say)."""
    src = f(1)
    others = [f(i) for i in range(5)]
    g = freeze([*[f(src, i) for i in range(4)], *others]).graph
    m = machine(g, DefaultPolicy(parallelism=2), [0, *g.roots()[1:]])
    assert len(m.ready) == 5
    m.handle(Executed(0, 1, {}))
    fanned = [t for t in g.task_ids() if g.deps(t) == [0]]
    ins = m.handle(Completed(0, done(fanned)))
    assert not any(isinstance(i, Invoke) for i in ins)
    assert list(m.ready)[-4:] == fanned


def test_without_a_known_bound_every_other_ready_task_gets_its_own_worker() -> None:
    m = machine(fan(4), DefaultPolicy(), [0])
    m.handle(Executed(0, 1, {}))
    ins = m.handle(Completed(0, done([1, 2, 3, 4])))
    assert [i.start for i in ins if isinstance(i, Invoke)] == [[2], [3], [4]]


def test_the_backends_say_their_parallelism() -> None:
    assert InProcess().capabilities.parallelism == 1
    assert LocalProcesses(max_workers=3).capabilities.parallelism == 3


@shoal.task
def ident(i: int) -> int:
    return i


def test_a_runs_roots_start_in_shares(redis_url: str) -> None:
    """64 roots on a 2-slot pool: 8 first invocations, not 64; the results are those of the
    plain function."""
    backend = LocalProcesses(max_workers=2)
    with shoal.Session(redis_url=redis_url, backend=backend, progress=False) as s:
        assert s.compute(*[ident(i) for i in range(64)]) == tuple(range(64))
        assert backend.stats.invocations == 2 * SHARES_PER_SLOT
