"""What recovery runs again when a lease expires, decided without a store: hand-built graphs and
task states (True = done and stored, False = done but kept by the dead worker, None = not
done), exact decisions expected. Then the thin async shell on a stub that records lookups."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

import pytest

import shoal
from shoal import _core
from shoal.client.recovery import Graph, Need, Recovery, decide, recovery_invocation
from shoal.config import Settings
from shoal.graph import FrozenGraph, freeze
from shoal.runtime.elements import MapView, element_id, item_id, view
from shoal.runtime.invocation import Invocation
from shoal.signing import context, seal
from shoal.storage.base import Storage


@shoal.task
def one(x: Any) -> Any:
    return x


@shoal.task
def many(*xs: Any) -> tuple[Any, ...]:
    return xs


@shoal.task
def items(n: int) -> list[int]:
    return list(range(n))


def pinned(frozen: FrozenGraph, assignment: dict[int, int]) -> FrozenGraph:
    # The planner API may be renamed from with_assignment to with_plan.
    pin = getattr(frozen, "with_assignment", None) or frozen.with_plan
    return pin(assignment)


def settle(
    graph: Graph, member: str, states: dict[int, bool | None]
) -> tuple[Recovery | None, list[tuple[int, ...]]]:
    """decide() asked again with each state it needs, as the shell does; returns the decision
    and the lookups it asked for, in order."""
    asked: list[tuple[int, ...]] = []
    known: dict[int, bool | None] = {}
    while isinstance(d := decide(graph, member, known), Need):
        assert not set(d.tasks) & set(known), "asked twice for a state"
        asked.append(d.tasks)
        known.update({t: states[t] for t in d.tasks})
    return d, asked


# -- a flexible chain: 0 -> 1 -> 3 <- 2 --------------------------------------------------------


@pytest.fixture
def chain() -> _core.Graph:
    g = freeze([many(one(one(1)), one(2))]).graph
    # Ids are dense in dependency order; the test below depends on this shape.
    assert [g.deps(t) for t in range(4)] == [[], [0], [], [1, 2]]
    assert all(g.worker(t) is None for t in range(4))
    return g


def test_flexible_task_with_stored_inputs_runs_alone(chain: _core.Graph) -> None:
    got, asked = settle(chain, "t3", {0: True, 1: True, 2: True, 3: None})
    assert got == Recovery(worker=None, start=(3,), recompute=(), resume=(3,))
    # Only the lost task and its direct inputs are looked up: nothing upstream of stored ones.
    assert asked == [(3,), (1, 2)]


def test_flexible_task_whose_input_died_recomputes_it(chain: _core.Graph) -> None:
    got, asked = settle(chain, "t3", {0: True, 1: False, 2: True, 3: None})
    assert got == Recovery(None, start=(1,), recompute=(1,), resume=(3,))
    assert asked == [(3,), (1, 2), (0,)]


def test_a_lost_chain_is_recomputed_from_its_first_stored_input(chain: _core.Graph) -> None:
    got, _ = settle(chain, "t3", {0: False, 1: False, 2: True, 3: None})
    assert got == Recovery(None, start=(0,), recompute=(0, 1), resume=(3,))


def test_a_not_done_input_is_neither_recomputed_nor_started(chain: _core.Graph) -> None:
    # Task 2 is covered by its own lease: recovery of 3 leaves it alone (3 waits for it).
    got, _ = settle(chain, "t3", {0: True, 1: False, 2: None, 3: None})
    assert got == Recovery(None, start=(1,), recompute=(1,), resume=(3,))


@pytest.mark.parametrize("state", [True, False])
def test_a_task_completed_meanwhile_needs_nothing(chain: _core.Graph, state: bool) -> None:
    got, asked = settle(chain, "t3", {0: True, 1: True, 2: True, 3: state})
    assert got is None
    assert asked == [(3,)]


def test_a_bad_member_is_refused(chain: _core.Graph) -> None:
    with pytest.raises(ValueError, match="unknown lease member 'x3'"):
        decide(chain, "x3", {})


# -- a pinned worker 7 holding 0 -> 1 -> 3, with a flexible 2 feeding 3 ----------------------


@pytest.fixture
def worker7() -> _core.Graph:
    frozen = freeze([one(many(one(one(1)), one(2)))])
    g = pinned(frozen, {0: 7, 1: 7, 3: 7}).graph
    assert [g.deps(t) for t in range(5)] == [[], [0], [], [1, 2], [3]]
    assert g.tasks_of(7) == [0, 1, 3]
    return g


def test_a_pinned_worker_lost_before_anything_ran_starts_over(worker7: _core.Graph) -> None:
    got, asked = settle(worker7, "w7", dict.fromkeys(range(5)))
    assert got == Recovery(7, start=(0,), recompute=(), resume=(0,), skip=())
    assert asked == [(0, 1, 2, 3)]  # its tasks and their inputs, in one lookup


def test_a_pinned_worker_skips_stored_work_and_recomputes_lost_work(worker7: _core.Graph) -> None:
    states = {0: True, 1: False, 2: True, 3: None, 4: None}
    got, _ = settle(worker7, "w7", states)
    assert got == Recovery(7, start=(1,), recompute=(1,), resume=(3,), skip=(0,))


def test_a_pinned_worker_recomputes_its_whole_lost_chain(worker7: _core.Graph) -> None:
    states = {0: False, 1: False, 2: True, 3: None, 4: None}
    got, _ = settle(worker7, "w7", states)
    assert got == Recovery(7, start=(0,), recompute=(0, 1), resume=(3,), skip=())


def test_a_pinned_worker_waiting_on_its_inbox_comes_back_to_wait(worker7: _core.Graph) -> None:
    # 1 is stored (3 still waits for 2): nothing is ready, nothing lost; the worker returns
    # with its done tasks skipped and takes 3 from its inbox once 2 completes.
    states = {0: True, 1: True, 2: None, 3: None, 4: None}
    got, _ = settle(worker7, "w7", states)
    assert got == Recovery(7, start=(), recompute=(), resume=(), skip=(0, 1))


def test_a_pinned_task_lease_recovers_its_worker(worker7: _core.Graph) -> None:
    states = {0: True, 1: False, 2: True, 3: None, 4: None}
    by_task, asked = settle(worker7, "t3", states)
    assert by_task == settle(worker7, "w7", states)[0]
    assert asked[0] == (3,)


def test_a_pinned_worker_with_everything_done_needs_nothing(worker7: _core.Graph) -> None:
    states = {0: True, 1: False, 2: True, 3: True, 4: None}
    assert settle(worker7, "w7", states)[0] is None
    assert settle(worker7, "t3", states)[0] is None


# -- maps: items(3) -> map one -> map many(., one(5)) -> many(.) ------------------------------


@pytest.fixture
def maps() -> MapView:
    first = shoal.map(one, items(3))
    second = shoal.map(many, first, one(5))
    g = view(freeze([many(second)]).graph)
    assert isinstance(g, MapView)
    assert {m: (i.ord, i.root) for m, i in g.map_info.items()} == {1: (0, 1), 3: (1, 1)}
    assert g.deps(4) == [3] and g.deps(3) == [1, 2]
    return g


def test_an_element_with_its_parent_element_stored_runs_alone(maps: MapView) -> None:
    lost = element_id(1, 2)
    parent = element_id(0, 2)
    assert maps.deps(lost) == [parent, 2]
    got, asked = settle(maps, f"t{lost}", {lost: None, parent: True, 2: True})
    assert got == Recovery(None, start=(lost,), recompute=(), resume=(lost,))
    assert asked == [(lost,), (2, parent)]


def test_an_element_recomputes_its_parent_element_from_the_stored_item(maps: MapView) -> None:
    lost, parent, item = element_id(1, 2), element_id(0, 2), item_id(0, 2)
    states = {lost: None, parent: False, 2: True, item: True}
    got, _ = settle(maps, f"t{lost}", states)
    assert got == Recovery(None, start=(parent,), recompute=(parent,), resume=(lost,))


def test_an_element_completed_meanwhile_needs_nothing(maps: MapView) -> None:
    lost = element_id(1, 0)
    assert settle(maps, f"t{lost}", {lost: True})[0] is None


def test_a_completed_map_counts_as_stored(maps: MapView) -> None:
    # The store reports a map as done without an output (its elements hold them): a consumer
    # of the map is recovered alone, the map is not recomputed.
    got, _ = settle(maps, "t4", {4: None, 3: False})
    assert got == Recovery(None, start=(4,), recompute=(), resume=(4,))


def test_a_static_task_done_without_output_is_recomputed_where_a_map_is_not(
    chain: _core.Graph,
) -> None:
    # The same states for a task that is not a map: it is recomputed (contrast with above).
    got, _ = settle(chain, "t1", {1: None, 0: False})
    assert got == Recovery(None, start=(0,), recompute=(0,), resume=(1,))


# -- the async shell ---------------------------------------------------------------------------


class Recorder:
    """The two store calls recovery makes, answered from a fixed table and recorded."""

    def __init__(self, states: dict[int, bool | None]) -> None:
        self.states = states
        self.lookups: list[list[int]] = []
        self.stored: list[tuple[str, str, bytes]] = []

    async def task_states(self, run_id: str, tasks: Sequence[int]) -> dict[int, bool | None]:
        assert run_id == "run1"
        self.lookups.append(list(tasks))
        # Not-done tasks left out: the shell must read a missing entry as not done.
        return {t: self.states[t] for t in tasks if self.states[t] is not None}

    async def put_subdag(self, run_id: str, name: str, blob: bytes) -> None:
        self.stored.append((run_id, name, blob))


def recover(graph: Graph, member: str, store: Recorder, **settings: Any) -> Invocation | None:
    # The stub answers the two calls recovery makes of its Storage, not the whole protocol.
    storage = cast(Storage, store)
    return asyncio.run(
        recovery_invocation("run1", graph, member, storage, Settings.from_env(**settings))
    )


def test_the_shell_sends_a_flexible_recovery_with_its_subdag_inline(chain: _core.Graph) -> None:
    store = Recorder({0: True, 1: False, 2: True, 3: None})
    inv = recover(chain, "t3", store)
    blob = chain.subdag_for(None, [1]).encode()
    assert inv == Invocation("run1", None, (1,), blob, None, {}, (1,), (3,), metrics="task")
    assert store.lookups == [[3], [1, 2], [0]]
    assert store.stored == []


def test_the_shell_stores_a_subdag_over_the_inline_limit(chain: _core.Graph) -> None:
    store = Recorder({0: True, 1: True, 2: True, 3: None})
    inv = recover(chain, "t3", store, inline_subdag_limit=0)
    blob = chain.subdag_for(None, [3]).encode()
    assert inv == Invocation("run1", None, (3,), None, "r3", {}, (), (3,), metrics="task")
    assert store.stored == [("run1", "r3", seal(blob, context("run1", "subdag", "r3")))]


def test_the_shell_reinvokes_a_pinned_worker_by_id(worker7: _core.Graph) -> None:
    store = Recorder({0: True, 1: False, 2: True, 3: None, 4: None})
    inv = recover(worker7, "w7", store)
    assert inv == Invocation("run1", 7, (1,), None, "w7", {}, (1,), (3,), (0,), "task")
    assert store.stored == []


def test_the_shell_returns_none_for_a_completed_task(chain: _core.Graph) -> None:
    store = Recorder({3: True})
    assert recover(chain, "t3", store) is None
    assert store.lookups == [[3]]
