"""``NonUniform``: every worker at the best size, then the ones off the critical path smaller.

1. Group the tasks as ``Uniform`` does (:func:`.grouping.assign`, the worker count chosen by
   simulation), every worker at the largest size on offer: the baseline makespan.
2. For each worker that runs no task of the simulated critical path, smallest work first, try
   the sizes below its own from the smallest up, and keep the first whose simulated makespan
   stays within ``tolerance`` of the baseline. Every try is a full simulation, so a downgrade
   that makes a new critical path is caught, and the next candidates come from the critical
   path of the plan as it now stands.

Worker sizes change execution only through their CPU share: on a platform that enforces
Lambda's rule (``Platform.cpu_shares``) a size is ``Size(memory_mb, cpu=lambda_cpu(mb))``
and predictions scale execution by it; where shares are not enforced, smaller sizes cost
nothing in time, and every worker off the critical path goes to the smallest size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..backends.cpu import lambda_cpu
from ..planning.plan import Plan, Size, TaskPlan
from ..planning.simulate import Simulation, simulate
from .base import Problem
from .grouping import assign, candidate_counts


class NonUniform:
    name = "nonuniform"

    def __init__(self, sizes: Sequence[int], tolerance: float = 0.05) -> None:
        found = sorted(set(sizes)) if isinstance(sizes, Sequence) else []
        if not found or not all(
            isinstance(mb, int) and not isinstance(mb, bool) and mb >= 1 for mb in found
        ):
            raise ValueError(f"sizes must be a non-empty list of memory sizes in MB, got {sizes!r}")
        if not isinstance(tolerance, int | float) or not 0 <= tolerance < 1:
            raise ValueError(f"tolerance must be a fraction in [0, 1), got {tolerance!r}")
        self.sizes = found
        self.tolerance = float(tolerance)

    def params(self) -> dict[str, Any]:
        return {"sizes": self.sizes, "tolerance": self.tolerance}

    def plan(self, problem: Problem) -> Plan:
        g = problem.graph
        q = problem.predictions(None)  # every size's samples, scaled by CPU share
        platform = problem.platform

        def size(mb: int) -> Size:
            return Size(memory_mb=mb, cpu=lambda_cpu(mb) if platform.cpu_shares else None)

        def plan_of(where: dict[int, int], sized: dict[int, int]) -> Plan:
            tasks = {t: TaskPlan(w, size(sized[w])) for t, w in where.items()}
            return Plan(tasks, {w: size(mb) for w, mb in sized.items()})

        def run(p: Plan) -> Simulation:
            return simulate(p.apply(g), q, platform, problem.identity, widths=problem.widths)

        best_mb = self.sizes[-1]
        chosen: tuple[Simulation, dict[int, int]] | None = None
        for count in candidate_counts(len(g), platform.slots):
            where = assign(g, q, problem.identity, count, platform.slots, problem.widths).workers
            sim = run(plan_of(where, dict.fromkeys(set(where.values()), best_mb)))
            if chosen is None or sim.makespan_s < chosen[0].makespan_s:
                chosen = (sim, where)
        assert chosen is not None
        sim, where = chosen
        sized = dict.fromkeys(set(where.values()), best_mb)
        limit = sim.makespan_s * (1 + self.tolerance)
        tried: set[int] = set()
        while True:
            critical = {where[t] for t in sim.critical_path if t in where}
            work = {w: 0.0 for w in sized}
            for t, times in sim.tasks.items():
                if t in where:
                    work[where[t]] += times.exec_s
            candidates = sorted(
                (w for w in sized if w not in critical and w not in tried), key=work.__getitem__
            )
            if not candidates:
                break
            w = candidates[0]
            tried.add(w)
            for mb in (m for m in self.sizes if m < sized[w]):
                trial = {**sized, w: mb}
                found = run(plan_of(where, trial))
                if found.makespan_s <= limit:
                    sized, sim = trial, found
                    break
        final = plan_of(where, sized)
        return Plan(final.tasks, final.workers, planner=self.name, predicted=sim)
