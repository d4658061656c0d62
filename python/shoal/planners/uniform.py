"""``Uniform``: one worker size, tasks grouped onto workers for locality; and ``Default``.

For each candidate number of workers (:func:`.grouping.candidate_counts`: one, and the
platform's slots up to twice over), :func:`.grouping.assign` groups the tasks by predicted
finish time. Each grouping, and the plan that pins nothing (the runtime's own sharing of
fan-outs by the platform's parallelism), is then simulated (:mod:`shoal.planning.simulate`,
the same code that predicts any plan) and the one with the shortest predicted makespan wins.
Ties within 2 % go to the plan that pins nothing (no stored subDAGs, no inboxes), then to
fewer workers (fewer GB-seconds). On a large graph only the
grouping the greedy estimate ranks best is simulated beside the all-flexible plan, to keep
planning within a second for 10,000 tasks.

``Default`` is the planner a session uses when none is named. It is ``Uniform`` at the
platform's default size: with no history the predictions are the defaults (every function
alike), so the grouping is by structure alone (chains and small fan-outs together, wide
fan-outs split over the pool); with history the same code weighs the measured costs.
"""

from __future__ import annotations

from typing import Any

from ..backends.cpu import lambda_cpu
from ..planning.plan import Plan, Size, TaskPlan
from ..planning.simulate import Simulation, simulate
from .base import Problem
from .grouping import assign, candidate_counts

#: A smaller worker count wins when its predicted makespan is within this of the best.
TIE = 0.02
#: Graphs larger than this simulate only the best grouping by the greedy estimate.
SIMULATE_ALL_BELOW = 2000


class Uniform:
    name = "uniform"

    def __init__(self, memory_mb: int | None = None) -> None:
        if memory_mb is not None and (
            not isinstance(memory_mb, int) or isinstance(memory_mb, bool) or memory_mb < 1
        ):
            raise ValueError(f"memory_mb must be an integer >= 1 or None, got {memory_mb!r}")
        self.memory_mb = memory_mb

    def params(self) -> dict[str, Any]:
        return {} if self.memory_mb is None else {"memory_mb": self.memory_mb}

    def plan(self, problem: Problem) -> Plan:
        g = problem.graph
        q = problem.predictions(self.memory_mb)
        slots = problem.platform.slots
        size = None
        if self.memory_mb is not None:  # with the CPU share the platform will give it
            cpu = lambda_cpu(self.memory_mb) if problem.platform.cpu_shares else None
            size = Size(memory_mb=self.memory_mb, cpu=cpu)
        options = []
        for count in candidate_counts(len(g), slots):
            found = assign(g, q, problem.identity, count, slots, problem.widths)
            options.append((found.estimate_s, count, found.workers))
        options.sort(key=lambda o: o[0])
        if len(g) > SIMULATE_ALL_BELOW:
            options = options[:1]
        # The runtime's own flexible sharing is an alternative too, and wins ties: it needs
        # no stored subDAGs or inboxes.
        flexible = Plan({t: TaskPlan(None, size) for t in g.task_ids()} if size else {})
        candidates = [flexible]
        for _, _, workers in sorted(options, key=lambda o: o[1]):
            tasks = {t: TaskPlan(w, size) for t, w in workers.items()}
            if size is not None:  # map tasks run at the size too, flexible
                tasks.update({t: TaskPlan(None, size) for t in g.task_ids() if t not in tasks})
            sized = {w: size for w in set(workers.values())} if size else {}
            candidates.append(Plan(tasks, sized))
        best: tuple[Simulation, Plan] | None = None
        for plan in candidates:
            sim = simulate(
                plan.apply(g), q, problem.platform, problem.identity, widths=problem.widths
            )
            if best is None or sim.makespan_s < best[0].makespan_s * (1 - TIE):
                best = (sim, plan)
        assert best is not None
        sim, chosen = best
        # Its simulation goes along: planned() attaches it rather than simulating again.
        return Plan(chosen.tasks, chosen.workers, planner=self.name, predicted=sim)


class Default(Uniform):
    """``Uniform`` at the platform's default size: by structure with no history, by the
    measured costs with it."""

    name = "default"

    def __init__(self) -> None:
        super().__init__(None)
