"""Replaying a recorded run under other settings (``shoal what-if``).

The history keeps the last runs of each workflow with their graph (plan table included) and
what every task measured (:class:`~shoal.metrics.history.Replay`). A what-if simulates that
graph again with each task's *recorded* execution time and output size, and everything else
(starts, data movement) predicted from the history, under:

- the recorded plan (``plan="recorded"``) or with every task flexible (``"flexible"``);
- another pool size (``slots``; default: the recorded run's).

It first replays the run as it was (the same plan and pool), so the figure to compare with is
the simulation of the run itself, not only its measured makespan: their difference is what
the simulation misses of that run.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import _core
from ..errors import UsageError
from ..metrics.history import History, Replay
from ..runtime.elements import view
from .predict import Predictions
from .simulate import Platform, Simulation, simulate

PLANS = ("recorded", "flexible")


@dataclass(frozen=True)
class WhatIf:
    replay: Replay
    #: The run replayed as it was, and under the settings asked for.
    as_run: Simulation
    changed: Simulation
    plan: str
    slots: int | None


async def what_if(
    history: History,
    run_id: str,
    *,
    plan: str = "recorded",
    slots: int | None = None,
    sla: str = "average",
) -> WhatIf:
    if plan not in PLANS:
        raise UsageError(f"what-if plan must be one of {', '.join(PLANS)}, got {plan!r}")
    replay = await history.replay(run_id)
    if replay is None:
        raise UsageError(
            f"run {run_id!r} has no replay in this history (only the last runs of each "
            "workflow keep one; see `shoal history`)"
        )
    graph = view(_core.Graph.decode(replay.graph))
    identity = {t: (s.fn, s.code) for t, s in replay.samples.items()}

    def of(task: int) -> tuple[str, str]:
        return identity.get(task, (graph.fn_name(task), graph.fn_hash(task).hex()))

    functions = list(dict.fromkeys(identity.values()))
    predictions = Predictions.from_history(await history.load(functions), sla)
    measured = {t: (s.exec_s, float(s.output_bytes)) for t, s in replay.samples.items()}
    summary = replay.summary
    recorded = summary.slots
    warm = summary.warm  # idle processes when it was submitted
    widths = summary.widths
    as_run = simulate(graph, predictions, Platform(slots=recorded, warm=warm), of, measured, widths)
    changed_graph = graph if plan == "recorded" else graph.with_plan({}, [])
    slots = recorded if slots is None else slots
    changed = simulate(
        changed_graph, predictions, Platform(slots=slots, warm=warm), of, measured, widths
    )
    return WhatIf(replay, as_run, changed, plan, slots)
