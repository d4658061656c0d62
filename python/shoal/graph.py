"""Freezing lazy nodes into a run's graph.

The walk itself is Rust (``shoal._core.freeze``): dense task ids in dependency order, argument
templates, the function table (one cloudpickle blob per distinct function object, keyed by a
16-byte blake3 hash) and large constants stored once by content hash. This module is the thin
Python face of it and the place the runtime gets a frozen graph from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from . import _core
from .config import Settings
from .errors import UsageError
from .planning.plan import Plan, as_plan
from .serialize import dumps_leaf
from .task import Node


@dataclass(frozen=True)
class FrozenGraph:
    """A whole run's graph plus the blobs it refers to."""

    graph: _core.Graph
    #: Task id of each requested node, in the order they were requested (duplicates allowed).
    output_ids: tuple[int, ...]
    #: Function blobs by hash: stored once, shared across runs.
    functions: dict[bytes, bytes]
    #: Large constants by hash: stored once per run.
    constants: dict[bytes, bytes]
    #: The live function objects by hash (in-process workers use them as their warm cache).
    live_functions: dict[bytes, Callable[..., Any]]

    #: The plan applied to ``graph`` (None: all flexible, no planner ran).
    plan: Plan | None = None

    def with_plan(self, plan: Plan | Mapping[int, int] | None) -> FrozenGraph:
        """This graph under ``plan`` (a :class:`~shoal.planning.Plan`, or a
        ``{task_id: worker_id}`` mapping that pins those tasks)."""
        found = as_plan(plan)
        if found is None:
            return self
        return replace(self, graph=found.apply(self.graph), plan=found)


def freeze(
    nodes: Sequence[Node[Any]] | Iterable[Node[Any]], settings: Settings | None = None
) -> FrozenGraph:
    """Freezes the graph that ends in ``nodes``. Requesting a node twice is allowed."""
    settings = settings or Settings.from_env()
    nodes = list(nodes)
    for n in nodes:
        if not isinstance(n, Node):
            raise UsageError(
                f"shoal.compute expects Nodes (the result of calling a @shoal.task function), "
                f"got {type(n).__name__}: {n!r:.60}"
            )
    distinct = list({id(n): n for n in nodes}.values())
    frozen = _core.freeze(distinct, Node, dumps_leaf, settings.const_threshold)
    by_node = {id(n): i for n, i in zip(distinct, frozen.outputs, strict=True)}
    output_ids = tuple(by_node[id(n)] for n in nodes)
    return FrozenGraph(
        frozen.graph, output_ids, frozen.functions, frozen.constants, frozen.live_functions
    )
