"""Element tasks of maps (``shoal.map``): their ids, and a view of a subDAG that answers for them.

The frozen graph holds a map as one task (see ``rust/shoal-core/src/maps.rs``). At run time the
worker that runs a chain's root *expands* it: the source's value has N items, and each map of
the chain gets N *element* tasks. Elements are not in any frozen graph: they share their map's
function, options and argument template, and differ only in their mapped input. Their ids are
derived, so every worker, the client and the store agree on them without asking:

- element i of the map with ordinal ``ord``: ``((2 * ord + 1) << 32) | i``;
- item i of a chain's source (the root's mapped input, stored at expansion):
  ``((2 * ord(root) + 2) << 32) | i``.

Static task ids are below ``2**32``, and with at most ``MAX_MAPS`` maps every derived id stays
below ``10**14``, which the server's Lua numbers hold exactly. Element i of a map depends on
element i of its parent map (or on item i, for the root) and on the map's broadcast inputs;
when it completes, it makes element i of each child map ready at once (the chain's broadcast
inputs were all done before the expansion) and counts down its map's *gather*: when the last
element is done, the map itself completes and its static consumers are counted down.

:class:`MapView` wraps a ``shoal._core.Graph`` that holds maps and answers the runtime's graph
questions (name, deps, options, fill, downstream, subDAG cuts) for element ids as well.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .. import _core, events
from ..storage.base import Downstream, Gather

#: Static task ids are below this; element and item ids above.
DYNAMIC = 1 << 32
#: The most maps per graph (mirrors ``shoal_core::maps::MAX_MAPS``).
MAX_MAPS = 11_000


def element_id(ord: int, index: int) -> int:
    return ((2 * ord + 1) << 32) | index


def item_id(ord: int, index: int) -> int:
    return ((2 * ord + 2) << 32) | index


def split(task: int) -> tuple[bool, int, int]:
    """``(is_item, ord, index)`` of a derived id."""
    high, index = task >> 32, task & 0xFFFF_FFFF
    if high % 2:
        return False, (high - 1) // 2, index
    return True, (high - 2) // 2, index


@dataclass(frozen=True, slots=True)
class MapInfo:
    ord: int
    root: int
    group_deps: int


class MapView:
    """A subDAG (``shoal._core.Graph``) plus the element tasks of the maps it holds."""

    def __init__(self, graph: _core.Graph) -> None:
        self.core = graph
        self.map_info = {m.id: MapInfo(m.ord, m.root, m.group_deps) for m in graph.maps()}
        self._by_ord = {info.ord: m for m, info in self.map_info.items()}
        self._children: dict[int, list[int]] = {}
        self._cuts: dict[tuple[int, ...], MapView] = {}
        #: A cut shared by every element of a map (kept in its parent's cache, so it lives as
        #: long as the worker's graph and may be encoded once).
        self.shared = False
        self._gathers: dict[int, Gather] = {}
        self._outputs = set(graph.outputs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.core, name)

    def __len__(self) -> int:
        return len(self.core)

    def __contains__(self, task: int) -> bool:
        if task < DYNAMIC:
            return task in self.core
        is_item, ord, _ = split(task)
        m = self._by_ord.get(ord)
        return not is_item and m is not None and m in self.core

    # -- what a task is ---------------------------------------------------------------------

    def is_map(self, task: int) -> bool:
        return task in self.map_info

    def is_root(self, task: int) -> bool:
        info = self.map_info.get(task)
        return info is not None and info.root == task

    def element(self, task: int) -> tuple[int, int] | None:
        """``(map id, index)`` of an element id; None for a static task or an item."""
        if task < DYNAMIC:
            return None
        is_item, ord, index = split(task)
        if is_item or ord not in self._by_ord:
            return None
        return self._by_ord[ord], index

    def _map_of(self, task: int) -> int:
        found = self.element(task)
        if found is None:
            raise ValueError(f"task {task} is not an element of a map in this subDAG")
        return found[0]

    def child_maps(self, m: int) -> list[int]:
        """The maps held here that run element-wise after map ``m``."""
        kids = self._children.get(m)
        if kids is None:
            kids = [
                c
                for c in self.core.consumers(m)
                if c in self.map_info and self.core.deps(c)[0] == m
            ]
            self._children[m] = kids
        return kids

    def element_base(self, m: int) -> int:
        return element_id(self.map_info[m].ord, 0)

    def item_base(self, root: int) -> int:
        return item_id(self.map_info[root].ord, 0)

    # -- the runtime's graph questions --------------------------------------------------------

    def name(self, task: int) -> str:
        found = self.element(task)
        if found is None:
            return self.core.name(task)
        m, index = found
        return f"{self.core.name(m)}[{index}]"

    def deps(self, task: int) -> list[int]:
        found = self.element(task)
        if found is None:
            return self.core.deps(task)
        m, index = found
        deps = self.core.deps(m)
        if self.map_info[m].root != m:  # element i of the parent map
            upstream = element_id(self.map_info[deps[0]].ord, index)
        else:  # item i of the chain's source
            upstream = item_id(self.map_info[m].ord, index)
        return [upstream, *deps[1:]]

    def worker(self, task: int) -> int | None:
        return None if task >= DYNAMIC else self.core.worker(task)

    def options(self, task: int) -> _core.TaskOptions:
        return self.core.options(task if task < DYNAMIC else self._map_of(task))

    def plan_of(self, task: int) -> _core.TaskPlan:
        if task < DYNAMIC:
            return self.core.plan_of(task)
        # An element runs as its map was planned, but flexible (maps are never pinned).
        planned = self.core.plan_of(self._map_of(task))
        return _core.TaskPlan(None, planned.size, planned.optimizations)

    def optimized(self) -> dict[int, list[_core.Optimization]]:
        return self.core.optimized()

    def fn_name(self, task: int) -> str:
        return self.core.fn_name(task if task < DYNAMIC else self._map_of(task))

    def fn_hash(self, task: int) -> bytes:
        return self.core.fn_hash(task if task < DYNAMIC else self._map_of(task))

    def const_hashes(self, task: int | None = None) -> list[bytes]:
        if task is not None and task >= DYNAMIC:
            task = self._map_of(task)
        return self.core.const_hashes(task)

    def fill(
        self,
        task: int,
        values: list[Any],
        loads: Callable[[bytes], Any],
        consts: dict[bytes, Any] | None = None,
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        # An element's template is its map's: slot 0 is the mapped input, the rest broadcast.
        return self.core.fill(task if task < DYNAMIC else self._map_of(task), values, loads, consts)

    def downstream(self, task: int) -> list[_core.Downstream] | list[Downstream]:
        found = self.element(task)
        if found is None:
            return self.core.downstream(task)
        m, index = found
        return [
            Downstream(element_id(self.map_info[c].ord, index), 1, None) for c in self.child_maps(m)
        ]

    def consumers(self, task: int) -> list[int]:
        if task < DYNAMIC:
            return self.core.consumers(task)
        is_item, ord, index = split(task)
        m = self._by_ord.get(ord)
        if m is None:
            return []
        if is_item:
            return [element_id(ord, index)] if m in self.core else []
        return [element_id(self.map_info[c].ord, index) for c in self.child_maps(m)]

    def gather(self, m: int) -> Gather:
        """What completes when the last element of map ``m`` is done."""
        g = self._gathers.get(m)
        if g is None:
            down = [Downstream(d.task, d.ndeps, d.worker) for d in self.core.downstream(m)]
            name = self.core.name(m)
            g = self._gathers[m] = Gather(m, down, m in self._outputs, _gather_fields(m, name))
        return g

    def subdag_for(self, worker: int | None, starts: list[int]) -> _core.Graph | MapView:
        """The subDAG for ``starts``; an element's is its map's closure (the same for every
        index, so it is cut once)."""
        if all(t < DYNAMIC for t in starts):
            return view(self.core.subdag_for(worker, starts))
        static = list(dict.fromkeys(t if t < DYNAMIC else self._map_of(t) for t in starts))
        key = (-1 if worker is None else worker, *static)
        cut = self._cuts.get(key)
        if cut is None:
            cut = self._cuts[key] = MapView(self.core.subdag_for(worker, static))
            cut.shared = True
        return cut


def _gather_fields(m: int, name: str) -> dict[str, str]:
    """The TASK_COMPLETED fields of a gathered map the store's script does not add."""
    fields = events.encode(events.TaskCompleted(task=m, name=name))
    return {k: v for k, v in fields.items() if k not in ("type", "task")}


def view(graph: _core.Graph) -> _core.Graph | MapView:
    """``graph`` itself, or a :class:`MapView` of it when it holds maps."""
    return MapView(graph) if graph.has_maps else graph


def is_map(graph: Any, task: int) -> bool:
    return isinstance(graph, MapView) and task in graph.map_info


#: Types whose iteration is almost surely not what a map over them means (characters, bytes,
#: dict keys) or has no order (sets).
_NOT_ITEMS = (str, bytes, bytearray, Mapping, set, frozenset)


def items_of(value: Any, what: str) -> list[Any]:
    """The items a map chain's source produced; a clear TypeError for anything else."""
    if isinstance(value, list):
        return value
    if hasattr(value, "columns"):  # a data frame iterates over its column labels, not rows
        raise TypeError(
            f"{what} is a {type(value).__name__}, whose items would be its column labels; "
            "return its rows as a list (e.g. list(df.itertuples()) or df.to_dict('records'))"
        )
    if not isinstance(value, _NOT_ITEMS):
        try:
            return list(value)
        except TypeError:
            pass
    raise TypeError(
        f"{what} must be a list, a tuple or another ordered iterable to map over, "
        f"got {type(value).__name__}: {value!r:.80}"
    )
