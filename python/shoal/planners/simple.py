"""``Simple``: the predecessor's first planner, kept as the reference the others beat.

Chains inherit their upstream's worker; a fan-out's first consumer stays with its source and
each of the others starts a worker of its own; a fan-in goes with its first input; every
root starts a worker. Every task gets the largest size on offer (the "best" size), or the
platform's default when none is offered. No prediction is used.
"""

from __future__ import annotations

from typing import Any

from ..planning.plan import Plan, Size, TaskPlan
from ..runtime.elements import MapView, view
from .base import Problem


class Simple:
    name = "simple"

    def params(self) -> dict[str, Any]:
        return {}

    def plan(self, problem: Problem) -> Plan:
        graph = problem.graph
        g = view(graph)
        maps = g if isinstance(g, MapView) else None
        size = Size(memory_mb=problem.sizes[-1]) if problem.sizes else None
        where: dict[int, int] = {}
        taken: set[int] = set()  # sources whose first consumer already inherited
        fresh = 0
        for t in graph.topo_order():
            if maps is not None and maps.is_map(t):
                continue  # maps stay flexible
            ups = [d for d in dict.fromkeys(graph.deps(t)) if d in where]
            inherit = next((d for d in ups if d not in taken), None)
            if inherit is not None:
                where[t] = where[inherit]
                taken.add(inherit)
            else:
                where[t], fresh = fresh, fresh + 1
        tasks = {t: TaskPlan(w, size) for t, w in where.items()}
        workers = {w: size for w in set(where.values())} if size is not None else {}
        return Plan(tasks, workers, planner=self.name)
