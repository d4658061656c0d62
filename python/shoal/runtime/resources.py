"""What to ask a platform for when invoking a worker: sizes from the plan, else task options.

A planned size (the graph's plan table) wins over a task's own ``memory_mb`` option: the planner
saw the options and the history. A pinned worker is invoked at its planned worker size, else at
the largest size its tasks need.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import _core
from ..backends.base import Resources
from .elements import MapView

Graph = _core.Graph | MapView


def task_memory_mb(graph: Graph, task: int) -> int | None:
    size = graph.plan_of(task).size
    if size is not None and size.memory_mb is not None:
        return size.memory_mb
    return graph.options(task).memory_mb


def resources_for(graph: Graph, tasks: Sequence[int]) -> Resources | None:
    """The largest memory any of ``tasks`` needs (None when none asks for a limit)."""
    sizes = [mb for t in tasks if (mb := task_memory_mb(graph, t)) is not None]
    return Resources(memory_mb=max(sizes)) if sizes else None


def worker_resources(graph: Graph, worker: int, tasks: Sequence[int]) -> Resources | None:
    """Pinned worker ``worker``: its planned size, else what ``tasks`` need."""
    size = graph.worker_size(worker)
    if size is not None and size.memory_mb is not None:
        return Resources(memory_mb=size.memory_mb)
    return resources_for(graph, tasks)
