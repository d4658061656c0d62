"""Nodes nested at any depth in arguments, checked against the reference evaluator."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import shoal
from reference import evaluate


@shoal.task
def add(x: Any, y: Any) -> Any:
    return x + y


@shoal.task
def ident(x: Any) -> Any:
    return x


@shoal.task
def describe(*args: Any, **kwargs: Any) -> str:
    return repr((args, sorted(kwargs.items())))


@shoal.task
def total(d: dict[str, Any], scale: Any = 1) -> Any:
    flat = [v for row in d["xs"] for v in row]
    return (sum(flat) + d["y"]) * scale


def check(*nodes: shoal.Node[Any], scheduler: str = "sync") -> None:
    assert shoal.compute(*nodes, scheduler=scheduler) == evaluate(*nodes)


def test_design_nesting_example(scheduler: str) -> None:
    n = total({"xs": [[add(1, 1), add(2, 2)], [add(3, 3)]], "y": add(0, 0)}, scale=add(1, 0))
    assert n.compute(scheduler=scheduler) == 12
    check(n, scheduler=scheduler)


def test_list_of_lists_of_nodes() -> None:
    check(ident([[add(i, j) for j in range(3)] for i in range(3)]))


def test_dict_values_tuples_sets_frozensets_and_kwargs() -> None:
    a, b = add(1, 2), add(3, 4)
    n = describe(
        {"a": a, "t": (a, b, (b,)), "s": {a, b}, "f": frozenset([a])},
        [a, {"deep": [[(b,)]]}],
        k=a,
        other={"m": [b]},
    )
    check(n)


def test_the_same_node_twice_in_one_call() -> None:
    a = add(1, 2)
    check(add(a, a))
    check(describe(a, [a, a], k={"x": a}))


def test_node_as_a_dict_key() -> None:
    a = add(1, 2)
    check(ident({a: "three", "plain": a}))


def test_plain_values_survive_exactly() -> None:
    values: list[object] = [
        None,
        True,
        False,
        0,
        -1,
        2**63 - 1,
        -(2**63),
        2**64 - 1,
        2**100,
        1.5,
        float("inf"),
        "",
        "é",
        b"",
        b"\x00\xff",
        [],
        (),
        {},
        set(),
        frozenset(),
        complex(1, 2),
        range(3),
        bytearray(b"ab"),
    ]
    out = ident(values).compute(scheduler="sync")
    assert out == values
    assert [type(v) for v in out] == [type(v) for v in values]


def test_tuple_subclasses_and_custom_objects_travel_by_pickle() -> None:
    from collections import OrderedDict, namedtuple

    Point = namedtuple("Point", "x y")
    value = {"p": Point(1, 2), "od": OrderedDict(a=1)}
    out = ident(value).compute(scheduler="sync")
    assert out == value and type(out["p"]) is Point and type(out["od"]) is OrderedDict


def test_large_constants_are_stored_once_and_arrive_intact(scheduler: str) -> None:
    big = b"x" * (200 * 1024)
    text = "y" * (100 * 1024)
    nodes = [ident((big, text, i)) for i in range(5)]
    from shoal.graph import freeze

    frozen = freeze(nodes)
    assert len(frozen.constants) == 2
    assert len(frozen.graph.encode()) < 10_000
    assert shoal.compute(*nodes, scheduler=scheduler) == tuple((big, text, i) for i in range(5))


leaves = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=5)
    | st.binary(max_size=5),
    lambda children: (
        st.lists(children, max_size=3)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=12,
)


@st.composite
def nested_with_nodes(draw: st.DrawFn) -> Any:
    """A nested structure where some leaves are replaced by nodes computing that leaf."""
    shape = draw(leaves)
    use_node = draw(st.lists(st.booleans(), min_size=1, max_size=50))
    counter = iter(range(10**6))

    def convert(v: Any) -> Any:
        if isinstance(v, list):
            return [convert(x) for x in v]
        if isinstance(v, tuple):
            return tuple(convert(x) for x in v)
        if isinstance(v, dict):
            return {k: convert(x) for k, x in v.items()}
        i = next(counter)
        return ident(v) if use_node[i % len(use_node)] else v

    return convert(shape)


@given(nested_with_nodes(), nested_with_nodes())
def test_random_nested_arguments_match_reference(a: Any, b: Any) -> None:
    n = describe(a, k=b)
    assert n.compute(scheduler="sync") == evaluate(n)[0]
