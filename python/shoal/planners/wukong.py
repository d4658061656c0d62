"""WUKONG's schedule, kept as the baseline every other planner is measured against.

Every task is flexible. A completing worker keeps one of the tasks it made ready and invokes
a new worker for each of the others, and a run starts one worker per root, whatever the
platform's parallelism: the plan puts ``Spread(1)`` on every task with more than one
consumer and on every root. No prediction is needed.
"""

from __future__ import annotations

from typing import Any

from ..optimizations import Spread
from ..planning.plan import Plan, TaskPlan
from .base import Problem


class Wukong:
    name = "wukong"

    def params(self) -> dict[str, Any]:
        return {}

    def plan(self, problem: Problem) -> Plan:
        g = problem.graph
        spread = [Spread(1)]
        tasks = {
            t: TaskPlan(None, None, spread)
            for t in g.task_ids()
            if not g.deps(t) or len({d.task for d in g.downstream(t)}) > 1
        }
        return Plan(tasks, planner=self.name)
