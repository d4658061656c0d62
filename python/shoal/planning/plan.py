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
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from .. import _core
from ..errors import UsageError
from ..optimizations.kinds import check as check_optimization
from ..optimizations.kinds import check_together

Size = _core.Size
TaskPlan = _core.TaskPlan
Optimization = _core.Optimization

_ID_LIMIT = 2**32

if TYPE_CHECKING:
    from .simulate import Simulation


@dataclass(frozen=True)
class Plan:
    """A planner's decisions; tasks it does not name are flexible, with no size or
    optimizations."""

    tasks: Mapping[int, TaskPlan] = field(default_factory=dict)
    workers: Mapping[int, Size] = field(default_factory=dict)
    #: Who made it (a planner's name, or "manual").
    planner: str = "manual"
    #: The simulation of this plan (``shoal.simulate``); None when nothing was predicted.
    predicted: Simulation | None = field(default=None, compare=False, repr=False)
    #: ``history`` (every function has samples), ``partial`` or ``none`` (defaults only).
    confidence: str = "none"
    #: The SLA the predictions are at (``average`` or a percentile such as ``p95``).
    sla: str = "average"
    #: Monte-Carlo makespan percentiles (seconds): P50 and P95; empty when not sampled.
    makespan_quantiles: Mapping[str, float] = field(default_factory=dict, compare=False)

    @property
    def makespan_s(self) -> float | None:
        """The predicted makespan (RUN_SUBMITTED to RUN_COMPLETED), or None."""
        return None if self.predicted is None else self.predicted.makespan_s

    def with_predictions(
        self,
        simulation: Simulation,
        confidence: str,
        sla: str,
        quantiles: Mapping[str, float] | None = None,
    ) -> Plan:
        return replace(
            self,
            predicted=simulation,
            confidence=confidence,
            sla=sla,
            makespan_quantiles=dict(quantiles or {}),
        )

    def describe(self) -> str:
        """A few lines a person reads: who planned, the prediction and how sure it is."""
        pinned, sized = len(self.tasks), len(self.workers)
        lines = [f"plan by {self.planner}: {pinned} tasks pinned, {sized} sized workers"]
        sim = self.predicted
        if sim is not None:
            q = self.makespan_quantiles
            spread = f" (P50 {q['p50']:.3f} s, P95 {q['p95']:.3f} s)" if q else ""
            lines.append(
                f"predicted makespan {sim.makespan_s:.3f} s at SLA {self.sla}{spread}; "
                f"confidence: {self.confidence}"
            )
            lines.append(
                f"{len(sim.workers)} workers ({sim.cold_starts} cold, {sim.warm_starts} warm), "
                f"{sim.gb_s:.3f} GB-s; critical path {len(sim.critical_path)} tasks, "
                f"{sim.critical_exec_s:.3f} s of execution"
            )
        return "\n".join(lines)

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
            try:
                for optimization in p.optimizations:
                    check_optimization(optimization)
                check_together(p.optimizations)
            except UsageError as e:
                raise UsageError(f"plan entry of task {task}: {e}") from None
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
