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
_SPREAD = "spread"


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
        kinds = self._of(machine, completed)
        spread = kinds.get(_SPREAD)
        if spread is not None:
            return self._spread(machine, ready, spread)
        cluster = kinds.get(_CLUSTER)
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

    def _spread(self, machine: WorkerMachine, ready: list[int], params: Params) -> Placement:
        me, graph = machine.worker, machine.graph
        keep = [t for t in ready if me is not None and graph.worker(t) == me]
        flexible = [t for t in ready if graph.worker(t) is None]
        per = params.get("per_worker")
        shares = _chunks(flexible, per if isinstance(per, int) else 1)
        if me is None and shares:
            keep = shares.pop(0)
        return Placement(keep, shares, acted=(_SPREAD,) if flexible else ())


def root_shares(
    graph: _core.Graph | MapView, roots: list[int], parallelism: int | None
) -> list[list[int]]:
    """How a run's flexible roots go to its first workers: ``per_worker`` at a time when
    every one of them carries a ``spread``, else shares by the platform's parallelism
    (:func:`~shoal.runtime.shares.split`)."""
    table = graph.optimized()
    pers: set[object] = set()
    for r in roots:
        found = next((o for o in table.get(r, ()) if o.kind == _SPREAD), None)
        if found is None:
            pers.clear()
            break
        pers.add(found.params.get("per_worker"))
    if roots and len(pers) == 1:
        (per,) = pers
        return _chunks(roots, per if isinstance(per, int) else 1)
    return split(roots, parallelism, lambda t: task_memory_mb(graph, t))


def _chunks(tasks: list[int], size: int) -> list[list[int]]:
    return [tasks[i : i + size] for i in range(0, len(tasks), size)]
