"""Planners: strategy objects that decide which worker runs each task and how big it is.

A planner takes a :class:`Problem` (the graph, function identities, history, the platform)
and returns a :class:`~shoal.planning.Plan`; :func:`planned` checks it once and attaches its
simulation. ``Session(planner=...)``, ``compute(planner=...)``, ``shoal run --planner NAME``
and ``SHOAL_PLANNER`` choose one; the run records its name and parameters.

- :class:`Wukong`: all flexible, WUKONG's policy (keep one ready task, a new worker for each
  other); no predictions. The baseline.
- :class:`Simple`: the predecessor's first planner (chains inherit their upstream's worker,
  fan-outs split, the best size everywhere); the reference.
- :class:`Uniform`: one size; tasks grouped onto workers by predicted finish time, the
  worker count chosen by simulation.
- :class:`NonUniform`: every worker at the largest size, then those off the critical path
  downgraded while the predicted makespan stays within a tolerance.
- :class:`Default`: ``Uniform`` at the platform's default size; by structure alone when
  there is no history. What a session uses unless told otherwise.
"""

from __future__ import annotations

from typing import Any

from ..errors import UsageError
from .base import Planner, Problem, label, planned
from .nonuniform import NonUniform
from .simple import Simple
from .uniform import Default, Uniform
from .wukong import Wukong

#: ``--planner`` / ``SHOAL_PLANNER`` names. ``none`` plans nothing: every task flexible,
#: shared out by the platform's parallelism (the runtime's own policy).
NAMES: dict[str, type[Any]] = {
    "default": Default,
    "uniform": Uniform,
    "simple": Simple,
    "wukong": Wukong,
}


def by_name(name: str) -> Planner | None:
    """The planner a name stands for (``none``: no planner)."""
    if name == "none":
        return None
    found = NAMES.get(name)
    if found is None:
        known = ", ".join([*NAMES, "none"])
        raise UsageError(f"unknown planner {name!r}; known: {known}")
    planner: Planner = found()
    return planner


__all__ = [
    "NAMES",
    "Default",
    "NonUniform",
    "Planner",
    "Problem",
    "Simple",
    "Uniform",
    "Wukong",
    "by_name",
    "label",
    "planned",
]
