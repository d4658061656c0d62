"""``shoal.map`` on every scheduler (worker processes on a real server included), checked against
the reference evaluator; after each run on the server nothing is left but its event stream."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import shoal
from reference import evaluate


@shoal.task
def split(n: Any) -> list[int]:
    return list(range(n))


@shoal.task
def square(x: Any) -> Any:
    return x * x


@shoal.task
def shift(x: Any, k: Any) -> Any:
    return x + k


@shoal.task
def halve(x: Any) -> Any:
    return x / 2


@shoal.task
def total(xs: Any) -> Any:
    return sum(xs)


@shoal.task
def const(v: Any) -> Any:
    return v


@shoal.task
def fragile(x: int, bad: int) -> int:
    if x == bad:
        raise ValueError(f"cannot take item {x}")
    return x


@shoal.task
def pair(a: Any, b: Any) -> tuple[Any, Any]:
    return (a, b)


@pytest.mark.parametrize("n", [0, 1, 7])
def test_a_map_over_a_run_time_list(scheduler: str, n: int) -> None:
    squares = shoal.map(square, split(n))
    out = total(squares)
    got = shoal.compute(out, squares, scheduler=scheduler)
    assert got == evaluate(out, squares)
    assert got[1] == [i * i for i in range(n)]


@pytest.mark.slow
def test_a_map_over_ten_thousand_items(scheduler: str) -> None:
    squares = shoal.map(square, split(10_000))
    out = total(squares)
    assert out.compute(scheduler=scheduler) == sum(i * i for i in range(10_000))


def test_a_chain_of_three_maps_with_a_broadcast_input(scheduler: str) -> None:
    k = const(100)
    chain = shoal.map(halve, shoal.map(shift, shoal.map(square, split(9)), k))
    out = pair(total(chain), chain)
    got = out.compute(scheduler=scheduler)
    assert got == evaluate(out)[0]
    assert got[1] == [(i * i + 100) / 2 for i in range(9)]


@shoal.task
def first_stage(x: int, flag: str) -> int | bool:
    if x == 0:  # wait (up to 20 s) until element 1 has been through the whole chain
        deadline = time.monotonic() + 20
        while not os.path.exists(flag) and time.monotonic() < deadline:
            time.sleep(0.01)
        return os.path.exists(flag)
    return x


@shoal.task
def last_stage(x: int | bool, flag: str) -> int | bool:
    if x == 1:
        open(flag, "w").close()
    return x


@pytest.mark.parametrize("scheduler", ["threads", "processes"], indirect=True)
def test_chains_run_element_wise_without_a_barrier(scheduler: str, tmp_path: Path) -> None:
    """Element 0's first stage waits until element 1 has finished its last stage. With a
    barrier between the maps of a chain this could never happen."""
    flag = str(tmp_path / "element-1-done")
    chain = shoal.map(last_stage, shoal.map(first_stage, split(2), flag), flag)
    assert chain.compute(scheduler=scheduler) == [True, 1]


def test_a_failing_element_fails_the_run_naming_its_index(scheduler: str) -> None:
    out = total(shoal.map(fragile, split(6), 4))
    with pytest.raises(shoal.TaskError) as info:
        out.compute(scheduler=scheduler)
    err = info.value
    assert err.task == "fragile[4]"
    assert err.exc_type == "ValueError"
    assert "cannot take item 4" in str(err)


def test_maps_inside_a_graph_with_static_fan_outs(scheduler: str) -> None:
    leaves = [const(i) for i in range(6)]
    static_sum = total(leaves)  # static fan-in
    # A map over a literal list holding nodes, one over a task's output, and a map's list
    # broadcast whole into another chain.
    over_literal = shoal.map(shift, [leaves[0], 5, leaves[2]], static_sum)
    over_output = shoal.map(square, split(const(4)))
    crossed = shoal.map(pair, over_output, over_literal)
    outs = (
        total(over_literal),
        crossed,
        pair(static_sum, [total(over_output), over_literal]),
        shoal.map(square, over_literal),  # a second chain reading the same list
    )
    got = shoal.compute(*outs, scheduler=scheduler)
    assert got == evaluate(*outs)


def test_a_map_may_be_computed_twice_and_next_to_its_consumers(scheduler: str) -> None:
    m = shoal.map(square, split(3))
    assert shoal.compute(m, m, total(m), scheduler=scheduler) == ([0, 1, 4], [0, 1, 4], 5)


def test_plain_functions_options_and_keywords() -> None:
    retrying = shoal.task(retries=2)(shift)
    m = shoal.map(retrying, split(3), k=const(1))
    n = shoal.map(lambda x, scale=1: x * scale, m, scale=3)
    assert n.compute(scheduler="sync") == [3, 6, 9]
    assert repr(m).startswith("<shoal.map shift over <split>")


def test_a_source_that_is_not_a_list_fails_clearly(scheduler: str) -> None:
    with pytest.raises(shoal.TaskError, match=r"input of shoal.map 'square' must be a list"):
        shoal.map(square, const(5)).compute(scheduler=scheduler)
    with pytest.raises(shoal.TaskError, match=r"got dict"):
        shoal.map(square, const({"a": 1})).compute(scheduler="sync")


def test_tuples_and_ranges_are_lists_to_map_over() -> None:
    assert shoal.map(square, const((1, 2))).compute(scheduler="sync") == [1, 4]
    assert shoal.map(square, const(range(3))).compute(scheduler="sync") == [0, 1, 4]


def test_bad_map_calls_are_refused_when_built() -> None:
    with pytest.raises(TypeError, match="needs a function"):
        shoal.map(3, split(2))  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="maps over a node"):
        shoal.map(square, 5)
    xs = split(2)
    with pytest.raises(shoal.ShoalError, match="also passed whole"):
        shoal.map(pair, xs, [xs])


def test_a_chain_that_consumes_its_own_results_is_refused() -> None:
    first = shoal.map(square, split(3))
    second = shoal.map(pair, first, total(first))  # waits for the gather of its own chain
    with pytest.raises(shoal.GraphError, match="cannot consume its own results") as info:
        second.compute(scheduler="sync")
    assert "shoal.map 'pair' takes 'total'" in str(info.value)


def test_maps_cannot_be_pinned_by_an_assignment() -> None:
    m = shoal.map(square, split(3))
    out = total(m)
    from shoal.graph import freeze

    frozen = freeze([out])
    (map_id,) = [m.id for m in frozen.graph.maps()]
    with pytest.raises(shoal.GraphError, match="cannot be pinned"):
        frozen.with_plan({map_id: 0})


def test_iterating_a_lazy_node_points_to_shoal_map() -> None:
    with pytest.raises(shoal.ShoalError, match="shoal.map"):
        list(split(3))


@st.composite
def pipelines(draw: st.DrawFn) -> list[shoal.Node[Any]]:
    """A random map pipeline: a source of random width, chains of 1-3 maps with random
    broadcast inputs, branches, and fan-ins of random maps."""
    width = draw(st.integers(0, 12))
    base = split(width)
    maps: list[shoal.MapNode[Any]] = []
    for _ in range(draw(st.integers(1, 5))):
        parent = draw(st.sampled_from([base, *maps]))
        step = draw(st.sampled_from(["square", "shift", "halve"]))
        if step == "shift":
            maps.append(shoal.map(shift, parent, const(draw(st.integers(-5, 5)))))
        else:
            maps.append(shoal.map(square if step == "square" else halve, parent))
    picked = draw(st.lists(st.sampled_from(maps), min_size=1, max_size=3))
    return [total(m) for m in picked] + [maps[-1]]


@given(pipelines(), st.sampled_from(["sync", "threads"]))
def test_random_map_pipelines_match_the_reference(
    nodes: list[shoal.Node[Any]], scheduler: str
) -> None:
    assert shoal.compute(*nodes, scheduler=scheduler) == evaluate(*nodes)


def test_maps_between_tasks_pinned_to_workers(scheduler: str) -> None:
    """A planner pins static tasks; the maps between them stay flexible. The source's worker
    hands the expansion on, and the last element of the gathered map pushes the pinned fan-in
    onto its worker's inbox."""
    k = const(3)
    squares = shoal.map(square, split(6))
    out = total(shoal.map(shift, squares, k))
    from shoal.graph import freeze

    graph = freeze([out]).graph
    by_name = {graph.name(t): t for t in graph.task_ids()}
    assignment = {by_name["split"]: 0, by_name["const"]: 1, by_name["total"]: 1}
    assert shoal.compute(out, scheduler=scheduler, plan=assignment) == evaluate(out)


def test_a_chain_may_take_its_own_source_whole_further_down(scheduler: str) -> None:
    """The source feeds the chain's root (its items) and, whole, a later map of the chain."""
    xs = split(4)
    chain = shoal.map(pair, shoal.map(square, xs), xs)
    assert chain.compute(scheduler=scheduler) == evaluate(chain)[0]


def test_chains_reached_through_other_chains_hold_their_roots(scheduler: str) -> None:
    """A cut that reaches a map through another chain's consumers must hold that map's root
    (the reviewer's case: the second chain's root is only reachable through a gather)."""
    root = shoal.map(square, split(3))
    s = const(2)
    first = shoal.map(shift, root, s)
    other = shoal.map(square, root)
    far = shoal.map(shift, shoal.map(square, split(2)), total(other))
    outs = (total(first), far)
    assert shoal.compute(*outs, scheduler=scheduler) == evaluate(*outs)


@shoal.task
def step(a: Any, *rest: Any) -> Any:
    return a + 1


@shoal.task
def side(a: Any, j: int) -> list[int]:
    return list(range((a + j) % 3 + 1))


@shoal.task
def count_all(*lists: Any) -> list[Any]:
    return [len(x) if isinstance(x, list) else x for x in lists]


@pytest.mark.parametrize("seed", range(8))
def test_many_cuts_in_one_worker_are_never_confused(seed: int) -> None:
    """A long chain whose every link fans out into maps: one worker cuts many short-lived
    subDAGs, and every invocation must get its own (a cache keyed by object id once mixed
    them up)."""
    rng = random.Random(seed)
    t = step(0)
    outs: list[shoal.MapNode[Any]] = []
    for _ in range(rng.randint(5, 40)):
        outs += [shoal.map(square, side(t, j)) for j in range(rng.randint(0, 3))]
        t = step(t, *([step(t)] * rng.randint(0, 1)))
    out = count_all(t, *outs)
    assert out.compute(scheduler="sync") == evaluate(out)[0]


def test_mappings_are_refused_as_lists_to_map_over() -> None:
    from collections import OrderedDict

    with pytest.raises(shoal.TaskError, match=r"got OrderedDict"):
        shoal.map(square, const(OrderedDict(a=1))).compute(scheduler="sync")
    with pytest.raises(shoal.TaskError, match=r"got Table"):
        shoal.map(square, const(Table())).compute(scheduler="sync")


class Table(Mapping[str, int]):
    """A mapping that is not a dict: iterating it gives keys, not rows."""

    def __getitem__(self, key: str) -> int:
        return {"a": 1}[key]

    def __iter__(self) -> Iterator[str]:
        return iter(["a"])

    def __len__(self) -> int:
        return 1


@shoal.task
def countdown(n: int) -> Iterator[int]:
    yield from range(n, 0, -1)


class FrameLike:
    """Iterates over its column labels, as data frames do."""

    columns = ("a", "b")

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns)


def test_a_generator_source_is_read_once_as_the_list(scheduler: str) -> None:
    squares = shoal.map(square, countdown(4))
    out = pair(squares, total(squares))
    assert out.compute(scheduler=scheduler) == ([16, 9, 4, 1], 30)


def test_a_data_frame_like_source_is_refused_not_mapped_over_its_columns() -> None:
    with pytest.raises(shoal.TaskError, match=r"column labels.*itertuples"):
        shoal.map(square, const(FrameLike())).compute(scheduler="sync")
