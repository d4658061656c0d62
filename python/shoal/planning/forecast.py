"""From a graph and its history to a plan with predictions (what ``shoal.simulate`` does).

1. Read the history of the graph's functions and workflow (:meth:`History.load`: two round
   trips whatever the graph's size).
2. Fit the predictions at the plan's SLA (:mod:`.predict`).
3. Simulate the plan on the platform (:mod:`.simulate`): the point estimate.
4. Simulate it again ``samples`` times with durations drawn from the fitted models' own
   errors (Monte-Carlo, seeded): the makespan's P50 and P95. A percentile SLA thus means the
   same for the whole run as for one task. The samples are cut short when they would take
   longer than ``budget_s`` (large graphs): the quantiles then rest on fewer draws.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .. import _core
from ..graph import FrozenGraph
from ..identity import function_ids, workflow_id
from ..metrics.history import History, HistoryView
from ..runtime.elements import view
from .plan import Plan
from .predict import Predictions
from .simulate import Platform, percentiles, simulate

Identity = Callable[[int], tuple[str, str]]


def identities(frozen: FrozenGraph) -> Identity:
    """Task id -> (qualified name, code hash) of its function."""
    ids = function_ids(frozen.live_functions)
    graph = view(frozen.graph)  # answers for map elements too
    by_blob = {h: (f.name, f.code) for h, f in ids.items()}

    def of(task: int) -> tuple[str, str]:
        h = graph.fn_hash(task)
        return by_blob.get(h, (graph.fn_name(task), h.hex()))

    return of


def functions_of(graph: _core.Graph, identity: Identity) -> list[tuple[str, str]]:
    return list(dict.fromkeys(identity(t) for t in graph.task_ids()))


async def load_predictions(
    graph: _core.Graph,
    identity: Identity,
    history: History | None,
    sla: str,
    workflow: str | None = None,
) -> Predictions:
    """The predictions for ``graph``'s functions, with the widths its workflow's maps had in
    its latest run (``Predictions.widths``)."""
    known = await load_view(graph, identity, history, workflow)
    return predictions_from(known, graph, sla)


async def load_view(
    graph: _core.Graph, identity: Identity, history: History | None, workflow: str | None = None
) -> HistoryView:
    """What ``history`` knows of ``graph``'s functions and workflow (empty without one)."""
    if history is None:
        return HistoryView()
    return await history.load(functions_of(graph, identity), workflow)


def predictions_from(known: HistoryView, graph: _core.Graph, sla: str) -> Predictions:
    """The predictions for ``graph`` (at its planned size) from what history knows."""
    memory_mb, cpu = planned_size(graph)
    predictions = Predictions.from_history(known, sla, memory_mb=memory_mb, cpu=cpu)
    if known.runs:
        predictions.widths = dict(known.runs[0].widths)
    return predictions


def planned_size(graph: _core.Graph) -> tuple[int | None, float | None]:
    """The one size every task of ``graph`` is planned at, or None (mixed, or none): the
    predictions then use the samples at that size when there are some."""
    sizes = {
        (s.memory_mb, s.cpu) if (s := graph.plan_of(t).size) is not None else (None, None)
        for t in graph.task_ids()
    }
    return sizes.pop() if len(sizes) == 1 else (None, None)


def forecast(
    graph: _core.Graph,
    identity: Identity,
    predictions: Predictions,
    platform: Platform,
    plan: Plan | None = None,
    *,
    sla: str = "average",
    samples: int = 32,
    seed: int = 0,
    budget_s: float = 2.0,
) -> Plan:
    """``plan`` (default: every task flexible) with its simulation and makespan quantiles."""
    plan = plan or Plan(planner="default")
    widths = predictions.widths
    point = simulate(graph, predictions, platform, identity, widths=widths)
    drawn: list[float] = []
    began = time.perf_counter()
    for i in range(samples):
        if drawn and time.perf_counter() - began > budget_s:
            break
        draw = predictions.sampler(seed + i)
        drawn.append(simulate(graph, draw, platform, identity, widths=widths).makespan_s)
    quantiles = {}
    if len(drawn) >= 2:
        q = percentiles(drawn)
        quantiles = {"p50": q[0.5], "p95": q[0.95]}
    confidence = predictions.confidence(functions_of(graph, identity))
    return plan.with_predictions(point, confidence, sla, quantiles)


def frozen_workflow(frozen: FrozenGraph) -> str:
    return workflow_id(frozen.graph, function_ids(frozen.live_functions))
