"""The compiled core seen from Python: freezing, function table, cuts, codec robustness."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import shoal
from shoal import _core
from shoal.graph import freeze
from shoal.planning import Plan


@shoal.task
def inc(x: Any) -> Any:
    return x + 1


@shoal.task
def add(x: Any, y: Any) -> Any:
    return x + y


def make_f(k: int) -> shoal.TaskFunction[[int], int]:
    @shoal.task
    def f(x: int) -> int:
        return x + k

    return f


def tree(n_leaves: int) -> shoal.Node[Any]:
    level = [inc(i) for i in range(n_leaves)]
    while len(level) > 1:
        level = [add(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def test_ids_are_dense_and_in_dependency_order() -> None:
    g = freeze([tree(8)]).graph
    assert g.task_ids() == list(range(15))
    for t in g.task_ids():
        assert all(d < t for d in g.deps(t))
    order = g.topo_order()
    where = {t: i for i, t in enumerate(order)}
    assert sorted(order) == g.task_ids()
    assert all(where[d] < where[t] for t in order for d in g.deps(t))


def test_same_name_different_code_different_hash() -> None:
    f1, f2 = make_f(1), make_f(2)
    assert f1.name == f2.name == "f"
    frozen = freeze([add(f1(0), f2(0))])
    assert len(frozen.functions) == 3
    g = frozen.graph
    hashes = {g.name(t): g.fn_hash(t) for t in g.task_ids() if g.name(t) != "add"}
    assert len(set(g.fn_hash(t) for t in g.task_ids())) == 3
    assert add(f1(0), f2(0)).compute(scheduler="sync") == 3
    assert len(hashes) == 1  # both tasks are named "f"...
    f_tasks = [t for t in g.task_ids() if g.name(t) == "f"]
    assert g.fn_hash(f_tasks[0]) != g.fn_hash(f_tasks[1])  # ...but hash differently


def test_function_table_holds_each_function_once() -> None:
    frozen = freeze([tree(64)])
    assert len(frozen.functions) == 2
    for h, blob in frozen.functions.items():
        assert _core.hash16(blob) == h and len(h) == 16


def test_options_travel_per_task() -> None:
    n = add.options(retries=4, timeout_s=2.5, name="plus")(inc(1), inc.options(memory_mb=64)(2))
    g = freeze([n]).graph

    def named(o: _core.TaskOptions) -> tuple[int, int | None, float | None, str | None]:
        return (o.retries, o.memory_mb, o.timeout_s, o.name)

    by_name = sorted(((g.name(t), named(g.options(t))) for t in g.task_ids()), key=repr)
    assert by_name == sorted(
        [
            ("inc", (0, None, None, None)),
            ("inc", (0, 64, None, None)),
            ("plus", (4, None, 2.5, "plus")),
        ],
        key=repr,
    )


def test_cycle_built_by_mutation_is_a_clear_error() -> None:
    box: list[shoal.Node[Any]] = []
    n = inc(box)
    box.append(n)
    with pytest.raises(shoal.GraphError, match="cycle through task 'inc'"):
        n.compute(scheduler="sync")


def test_computing_a_node_twice_freezes_one_output() -> None:
    """Python allows requesting a node twice; the core graph holds each output once (it refuses
    duplicate output ids, tested in rust/shoal-core/tests/graph.rs) and the values fan back out."""
    n = tree(4)
    frozen = freeze([n, n])
    assert frozen.graph.outputs == [frozen.output_ids[0]]
    assert frozen.output_ids[0] == frozen.output_ids[1]


def test_a_cut_has_boundary_inputs_but_holds_only_its_tasks() -> None:
    g = freeze([tree(4)]).graph
    top = g.outputs[0]
    cut = g.subgraph([top])
    assert cut.task_ids() == [top]
    assert cut.deps(top) and all(d not in cut for d in cut.deps(top))


def test_partition_covers_every_task_exactly_once() -> None:
    rng = random.Random(7)
    g = freeze([tree(128)]).graph
    assignment = [(t, rng.randrange(4)) for t in g.task_ids() if rng.random() < 0.7]
    pinned = Plan.pinned(dict(assignment)).apply(g)
    groups = pinned.partition()
    seen = [t for ids in groups.values() for t in ids]
    assert sorted(seen) == g.task_ids()
    expected = dict(assignment)
    for worker, ids in groups.items():
        for t in ids:
            assert expected.get(t) == worker


def reference_closure(g: _core.Graph, starts: list[int]) -> set[int]:
    children: dict[int, list[int]] = {t: [] for t in g.task_ids()}
    for t in g.task_ids():
        for d in g.deps(t):
            children[d].append(t)
    seen: set[int] = set()
    stack = list(starts)
    while stack:
        t = stack.pop()
        if t not in seen:
            seen.add(t)
            stack.extend(children[t])
    return seen


@given(st.integers(0, 1023), st.integers(0, 3))
def test_subdag_holds_its_closure_and_nothing_else(leaf: int, extra: int) -> None:
    g = freeze([tree(1024)]).graph
    starts = sorted({leaf, (leaf * 7 + extra) % 1024})
    expected = reference_closure(g, starts)
    assert set(g.closure(starts)) == expected
    sub = g.subdag_for(None, starts)
    assert set(sub.task_ids()) == expected
    back = _core.Graph.decode(sub.encode())
    assert set(back.task_ids()) == expected


def test_leaf_subdag_is_small() -> None:
    g = freeze([tree(1024)]).graph
    sizes = [len(g.subdag_for(None, [r]).encode()) for r in g.roots()]
    assert max(sizes) <= 512
    assert len(g.encode()) / len(g) <= 40


def test_foreign_and_pinned_starts_are_errors() -> None:
    g = freeze([tree(4)]).graph
    with pytest.raises(shoal.GraphError, match="task 999 is not in the graph"):
        g.closure([999])
    pinned = Plan.pinned({0: 1}).apply(g)
    with pytest.raises(shoal.GraphError, match="pinned"):
        pinned.subdag_for(None, [0])


def test_fill_rebuilds_arguments_with_upstream_values() -> None:
    a, b = inc(1), inc(2)
    n = add({"x": [a, (b, a)], "s": {3}}, y=[b])
    frozen = freeze([n])
    g = frozen.graph
    t = frozen.output_ids[0]
    deps = g.deps(t)
    args, kwargs = g.fill(t, [f"v{d}" for d in deps], lambda blob: None)
    assert args == ({"x": [f"v{deps[0]}", (f"v{deps[1]}", f"v{deps[0]}")], "s": {3}},)
    assert kwargs == {"y": [f"v{deps[1]}"]}
    with pytest.raises(ValueError, match="2 dependencies but 1 values"):
        g.fill(t, ["only one"], lambda blob: None)


def valid_payload() -> bytes:
    return freeze([tree(32)]).graph.encode()


@given(st.binary(max_size=600))
def test_random_bytes_are_a_payload_error(data: bytes) -> None:
    with pytest.raises(shoal.PayloadError):
        _core.Graph.decode(data)


def test_every_truncation_is_a_payload_error() -> None:
    data = valid_payload()
    for cut in range(len(data)):
        with pytest.raises(shoal.PayloadError):
            _core.Graph.decode(data[:cut])


@given(st.data())
def test_corrupted_bytes_are_a_payload_error(draw: st.DataObject) -> None:
    data = bytearray(valid_payload())
    i = draw.draw(st.integers(0, len(data) - 1))
    data[i] ^= draw.draw(st.integers(1, 255))
    with pytest.raises(shoal.PayloadError):
        _core.Graph.decode(bytes(data))


def test_unknown_version_is_named() -> None:
    data = bytearray(valid_payload())
    data[2] = 42
    with pytest.raises(shoal.PayloadError, match="version 42 is not supported"):
        _core.Graph.decode(bytes(data))


def test_deep_nesting_in_an_argument_is_a_clear_error() -> None:
    deep: list[Any] = []
    for _ in range(300):
        deep = [deep]
    with pytest.raises(shoal.ShoalError, match="nested deeper than"):
        inc(deep).compute(scheduler="sync")
