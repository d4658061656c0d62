"""A plan: what a planner decided for one graph.

Per task: the worker id it is pinned to (None: flexible, handed on by whoever makes it ready),
the size it needs and its optimizations; per worker: its size. A plan travels inside the graph
as its *plan table* (``rust/shoal-core/src/plan.rs``), so every worker's subDAG carries the
decisions for the tasks it holds, and the worker machine's policy reads them there.

Optimizations are typed values with parameters (:class:`Optimization`: a kind name and bool /
int / float / str / task-id-list parameters). The core stores them without interpreting them,
so a new kind is defined in Python alone.

``Plan.pinned({task: worker})`` is the plan of a bare assignment (what ``compute(plan=...)``
accepts as a mapping).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .. import _core
from ..errors import UsageError

Size = _core.Size
TaskPlan = _core.TaskPlan
Optimization = _core.Optimization

_ID_LIMIT = 2**32


@dataclass(frozen=True)
class Plan:
    """A planner's decisions; tasks it does not name are flexible, with no size or
    optimizations."""

    tasks: Mapping[int, TaskPlan] = field(default_factory=dict)
    workers: Mapping[int, Size] = field(default_factory=dict)
    #: Who made it (a planner's name, or "manual").
    planner: str = "manual"

    @classmethod
    def pinned(cls, assignment: Mapping[int, int]) -> Plan:
        """The plan that pins each task of ``{task_id: worker_id}`` and nothing else."""
        for task, worker in assignment.items():
            _check_id("task id", task)
            _check_id("worker id", worker)
        return cls({t: TaskPlan(worker=w) for t, w in assignment.items()})

    def check(self) -> None:
        """Types and ranges of ids; the graph checks the rest (unknown tasks, pinned maps)."""
        for task, p in self.tasks.items():
            _check_id("task id", task)
            if not isinstance(p, TaskPlan):
                raise UsageError(
                    f"plan entry of task {task} must be a shoal.planning.TaskPlan, "
                    f"got {type(p).__name__}"
                )
        for worker, size in self.workers.items():
            _check_id("worker id", worker)
            if not isinstance(size, Size):
                raise UsageError(
                    f"plan size of worker {worker} must be a shoal.planning.Size, "
                    f"got {type(size).__name__}"
                )

    def apply(self, graph: _core.Graph) -> _core.Graph:
        """``graph`` with this plan as its plan table."""
        self.check()
        workers = [_core.WorkerPlan(w, s) for w, s in sorted(self.workers.items())]
        return graph.with_plan(dict(self.tasks), workers)


def as_plan(plan: Plan | Mapping[int, int] | None) -> Plan | None:
    """A :class:`Plan`, from a plan or a ``{task_id: worker_id}`` mapping."""
    if plan is None or isinstance(plan, Plan):
        return plan
    if isinstance(plan, Mapping):
        return Plan.pinned(plan)
    raise UsageError(
        f"plan must be a shoal.planning.Plan or a {{task_id: worker_id}} mapping, "
        f"got {type(plan).__name__}"
    )


def _check_id(what: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < _ID_LIMIT:
        raise UsageError(f"plan {what} must be an int in [0, 2**32), got {value!r}")
