"""What a planner is given and what it returns, and the one place plans are checked.

A planner (:class:`Planner`) is a strategy object: ``plan(problem) -> Plan``. The
:class:`Problem` holds everything it may weigh: the frozen graph (no plan applied yet), each
task's function identity, the predictions from history (or from defaults when there is none:
``problem.predictions.confidence(...)`` says which), and the platform (slots, keep-warm, warm
processes, the worker sizes on offer). A planner decides only where tasks run, how big each
worker is and which optimizations act; :func:`planned` then checks the plan once
(:meth:`Plan.check` and the graph's own checks), simulates it and attaches the predictions,
so every run that used a planner records what its plan predicted.

Every plan a planner can return is executable: pinned tasks reach their workers through
durable inboxes, and a pinned worker waiting on its inbox gives its slot to the next
invocation (the local pool does not count a parked process), so no assignment can deadlock a
pool, even of one slot (``tests/test_planners.py`` runs random graphs under random plans on
pools of 1 to 3 slots).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from .. import _core
from ..metrics.history import HistoryView
from ..planning.forecast import forecast, functions_of
from ..planning.plan import Plan
from ..planning.predict import Predictions
from ..planning.simulate import Platform

Identity = Callable[[int], tuple[str, str]]


@dataclass
class Problem:
    """What a planner plans for."""

    graph: _core.Graph
    identity: Identity
    #: What history knows of the graph's functions (empty: none; defaults stand in).
    history: HistoryView
    platform: Platform
    sla: str = "average"
    #: Worker memory sizes on offer (MB), smallest first; empty: the platform's default only.
    sizes: tuple[int, ...] = ()
    #: Map chain widths by root name (from the workflow's latest run).
    widths: dict[str, int] = field(default_factory=dict)
    _at: dict[int | None, Predictions] = field(default_factory=dict, repr=False)

    def predictions(self, memory_mb: int | None = None) -> Predictions:
        """The predictions for workers of ``memory_mb`` (None: the platform's default size),
        fitted once per size."""
        found = self._at.get(memory_mb)
        if found is None:
            found = Predictions.from_history(self.history, self.sla, memory_mb=memory_mb)
            found.widths = dict(self.widths)
            self._at[memory_mb] = found
        return found

    def known(self) -> bool:
        """Whether history knows any of the graph's functions."""
        return bool(self.history.functions)


class Planner(Protocol):
    #: The name runs record (``RUN_SUBMITTED.planner``) and ``--planner`` takes.
    name: str

    def params(self) -> dict[str, Any]:
        """The parameters a run records beside the name."""
        ...

    def plan(self, problem: Problem) -> Plan: ...


def planned(problem: Problem, planner: Planner, sla: str = "average", samples: int = 0) -> Plan:
    """``planner``'s plan for ``problem``, checked and with its predictions (Monte-Carlo
    quantiles when ``samples`` > 0)."""
    plan = planner.plan(problem)
    if not isinstance(plan, Plan):
        raise TypeError(
            f"planner {planner.name!r} returned {type(plan).__name__}, not a shoal.planning.Plan"
        )
    plan = replace(plan, planner=label(planner))
    graph = plan.apply(problem.graph)  # Plan.check, then the graph's: refused with what is wrong
    predictions = problem.predictions(uniform_size(plan))
    if plan.predicted is not None and not samples:  # the planner simulated it already
        confidence = predictions.confidence(functions_of(graph, problem.identity))
        return plan.with_predictions(plan.predicted, confidence, sla)
    return forecast(
        graph, problem.identity, predictions, problem.platform, plan, sla=sla, samples=samples
    )


def uniform_size(plan: Plan) -> int | None:
    """The one memory size every planned task and worker has, or None."""
    sizes = {p.size.memory_mb if p.size is not None else None for p in plan.tasks.values()}
    sizes |= {s.memory_mb for s in plan.workers.values()}
    return sizes.pop() if len(sizes) == 1 else None


def label(planner: Planner) -> str:
    """``name(k=v, ...)``: what a run records as its planner."""
    params = planner.params()
    inner = ", ".join(f"{k}={v!r}" for k, v in params.items())
    return f"{planner.name}({inner})" if params else planner.name
