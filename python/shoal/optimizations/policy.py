"""The worker policy with optimizations: :class:`~shoal.runtime.policy.DefaultPolicy` where a
task has none, each optimization's decision where it has one.

The plan's optimizations are read once, from the graph's plan table (``graph.optimized()``),
so a task without any costs one dictionary miss; a graph without any gets the default policy
itself (:func:`policy_for`). The runtime and the simulation both choose the policy here, so a
simulated plan places tasks as its run will.

A decision that acted names its kind in ``acted`` (``Placement.acted``: on the tasks it kept),
and the worker machine reports it on those tasks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..runtime.elements import DYNAMIC
from ..runtime.policy import DefaultPolicy, Placement, Policy
from ..runtime.resources import task_memory_mb
from ..runtime.shares import split
from .kinds import Params

if TYPE_CHECKING:
    from .. import _core
    from ..runtime.elements import MapView
    from ..runtime.machine import WorkerMachine

_CLUSTER = "cluster"


def policy_for(graph: _core.Graph | MapView, parallelism: int | None) -> Policy:
    """The policy for a worker holding ``graph``: the default one unless the plan gives some
    task an optimization."""
    table = graph.optimized()
    if not table:
        return DefaultPolicy(parallelism)
    return OptimizingPolicy(
        parallelism, {t: {o.kind: o.params for o in opts} for t, opts in table.items()}
    )


class OptimizingPolicy(DefaultPolicy):
    """The default decisions, changed where a task's optimizations say."""

    def __init__(
        self,
        parallelism: int | None,
        table: dict[int, dict[str, Params]],
    ) -> None:
        super().__init__(parallelism)
        #: task -> {kind: params}
        self.table = table

    def _of(self, machine: WorkerMachine, task: int) -> dict[str, Params]:
        found = self.table.get(task)
        if found is None and task >= DYNAMIC:  # an element: as its map was planned
            opts = machine.graph.plan_of(task).optimizations
            found = self.table[task] = {o.kind: o.params for o in opts}
        return found or {}

    def place(self, machine: WorkerMachine, completed: int, ready: list[int]) -> Placement:
        cluster = self._of(machine, completed).get(_CLUSTER)
        if cluster is None or machine.worker is not None:
            # Clustering acts on flexible workers: a pinned worker's tasks are the plan's.
            return super().place(machine, completed, ready)
        graph = machine.graph
        flexible = [t for t in ready if graph.worker(t) is None and t in graph]
        limit = cluster.get("max_tasks")
        keep = flexible if not isinstance(limit, int) else flexible[:limit]
        if not keep:
            return super().place(machine, completed, ready)
        kept = set(keep)
        rest = [t for t in ready if t not in kept]
        shares = split(rest, self.parallelism, lambda t: task_memory_mb(graph, t), len(keep))
        return Placement(keep, shares, acted=(_CLUSTER,))
