"""The state machine on graphs with maps, without any I/O: expansion, elements and gathers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import shoal
from shoal.graph import freeze
from shoal.runtime.elements import MapView, element_id, item_id, view
from shoal.runtime.machine import (
    Complete,
    Completed,
    Execute,
    Executed,
    Exit,
    Expand,
    Expanded,
    Invoke,
    Started,
    WorkerMachine,
    plain_encode,
)
from shoal.storage.base import CompletionResult

from .test_machine import config


@shoal.task
def src(n: int) -> list[int]:
    return list(range(n))


@shoal.task
def f(*xs: Any) -> Any:
    return sum(xs)


def done(ready: Iterable[int] = (), first: bool = True) -> CompletionResult:
    return CompletionResult(first, list(ready), [], False)


def pipeline() -> MapView:
    """0 = src(3), 1 = k, 2 = map(f, 0) root, 3 = map(f, 2, k), 4 = f(3): ids by freeze order."""
    k = f(7)
    first = shoal.map(f, src(3))
    second = shoal.map(f, first, k)
    out = f(second)
    g = view(freeze([out]).graph)
    assert isinstance(g, MapView)
    return g


def test_the_root_fetches_its_source_only_and_expands() -> None:
    g = pipeline()
    root = next(m for m in g.map_info if g.is_root(m))
    source = g.deps(root)[0]
    m = WorkerMachine(g.subdag_for(None, [source]), None, config())
    m.handle(Started([source], {}))
    [comp] = m.handle(Executed(source, [5, 6, 7], {}))
    assert isinstance(comp, Complete)
    # The source feeds a map: stored, whatever happens next (elements elsewhere need items).
    assert comp.completion.must_store
    [ex] = m.handle(Completed(source, done([root])))
    assert ex == Execute(root, 1, {source: [5, 6, 7]}, [])
    [expand] = m.handle(Expanded(root, [5, 6, 7], {}))
    assert isinstance(expand, Expand)
    x = expand.expansion
    ord0 = g.map_info[root].ord
    assert (x.root, x.width, x.element_base) == (root, 3, element_id(ord0, 0))
    assert x.items == [plain_encode(x.item_base + i, v) for i, v in enumerate((5, 6, 7))]
    assert x.item_base == item_id(ord0, 0)
    assert [gm.map for gm in x.maps] == [root, *g.child_maps(root)]
    assert x.width * len(x.maps) == 6  # elements the MAP_EXPANDED event announces


def test_elements_keep_one_invoke_the_rest_and_chain_element_wise() -> None:
    g = pipeline()
    root = next(m for m in g.map_info if g.is_root(m))
    (child,) = g.child_maps(root)
    e = [element_id(g.map_info[root].ord, i) for i in range(3)]
    items = [item_id(g.map_info[root].ord, i) for i in range(3)]
    m = WorkerMachine(g.subdag_for(None, [root]), None, config())
    m.handle(Started([root], {g.deps(root)[0]: [5, 6, 7]}))
    m.handle(Expanded(root, [5, 6, 7], {}))
    out = m.handle(Completed(root, done(e)))
    invokes = [i for i in out if isinstance(i, Invoke)]
    assert [i.start for i in invokes] == [[e[1]], [e[2]]]
    assert invokes[0].inputs == {items[1]: plain_encode(items[1], 6)}  # each takes its item along
    assert invokes[0].subdag is invokes[1].subdag  # one cut for every element of a map
    [ex] = [i for i in out if isinstance(i, Execute)]
    assert ex == Execute(e[0], 1, {items[0]: 5}, [])
    [comp] = m.handle(Executed(e[0], 5, {}))
    assert isinstance(comp, Complete)
    c = comp.completion
    # The one next element runs here, and nobody gathers the first map: nothing is encoded.
    assert c.output is None and [gm.map for gm in c.gathers] == [root]
    e2 = element_id(g.map_info[child].ord, 0)
    assert [d.task for d in c.downstream] == [e2]
    [ex2] = m.handle(Completed(e[0], done([e2])))
    k = g.deps(child)[1]
    assert ex2 == Execute(e2, 1, {e[0]: 5}, [k])  # the broadcast input is fetched
    [comp] = m.handle(Executed(e2, 12, {k: 7}))
    assert isinstance(comp, Complete)
    c = comp.completion
    # The second map is gathered into a static task: its elements are stored.
    assert c.must_store and c.output == plain_encode(e2, 12)
    assert [gm.map for gm in c.gathers] == [child] and c.gathers[0].downstream
    assert m.handle(Completed(e2, done())) == [Exit("no more work")]


def test_element_names_deps_and_fill_follow_their_map() -> None:
    g = pipeline()
    root = next(m for m in g.map_info if g.is_root(m))
    (child,) = g.child_maps(root)
    e = element_id(g.map_info[child].ord, 2)
    assert g.name(e) == "f[2]"
    assert g.deps(e) == [element_id(g.map_info[root].ord, 2), *g.deps(child)[1:]]
    assert e in g and item_id(g.map_info[root].ord, 0) not in g
    args, kwargs = g.fill(e, [1, 2], lambda b: b)
    assert args == (1, 2) and kwargs == {}
    assert g.worker(e) is None and g.options(e) == g.options(child)


def test_a_repeated_expansion_readies_nothing() -> None:
    g = pipeline()
    root = next(m for m in g.map_info if g.is_root(m))
    m = WorkerMachine(g.subdag_for(None, [root]), None, config())
    m.handle(Started([root], {g.deps(root)[0]: [1]}))
    m.handle(Expanded(root, [1], {}))
    assert m.handle(Completed(root, done(first=False))) == [Exit("no more work")]


def test_complete_instructions_for_static_tasks_are_unchanged_without_maps() -> None:
    g = freeze([f(f(1))]).graph
    assert view(g) is g
    m = WorkerMachine(g, None, config())
    m.handle(Started([0], {}))
    [comp] = m.handle(Executed(0, 1, {}))
    assert isinstance(comp, Complete) and comp.completion.gathers == ()
