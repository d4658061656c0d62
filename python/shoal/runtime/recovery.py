"""Recovery from dead workers: what to run again when a lease expires.

A lease (see :func:`shoal.storage.keys.leases`) covers every task from the moment it is ready
until it completes, while a worker holds it; a pinned worker also holds a lease on itself while
it lives. The client's watchdog asks the store for expired leases and turns each into one
recovery invocation:

- ``t<task>`` of a flexible task: a new flexible worker for that task;
- ``t<task>`` of a pinned task, or ``w<worker>``: worker ``w`` again, with the same id (its inbox
  is intact) and the list of its tasks that are done, so it resumes the ones that are ready.

The inputs a resumed task needs may have died with the worker: an output is not stored when its
only consumer ran on the same worker (see :mod:`.machine`). Walking up from the resumed tasks
through such done-but-unstored outputs gives the tasks to *recompute*; they all belong to the
same worker (flexible chain, or the pinned worker's own tasks), so the recovery worker can run
them. It starts with those whose inputs are all stored.

Maps (see :mod:`.elements`): an element's lease is recovered like a flexible task's (its map's
cut, with the item or the parent element it needs), and a map that completed counts as stored,
since its elements' outputs are.

Completion is idempotent and outputs are first-wins, so a recovery that races a worker that was
only slow costs time, never correctness.
"""

from __future__ import annotations

from .. import _core
from ..config import Settings
from ..signing import seal
from ..storage.base import Storage
from .elements import MapView, is_map
from .invocation import Invocation

#: Task state from the store: True = output stored, False = done (output not stored), None = not
#: done.
TaskState = bool | None


Graph = _core.Graph | MapView


async def _states(
    run_id: str, graph: Graph, tasks: list[int], storage: Storage
) -> dict[int, TaskState]:
    got = await storage.task_states(run_id, tasks)
    return {t: True if got.get(t) is False and is_map(graph, t) else got.get(t) for t in tasks}


async def recovery_invocation(
    run_id: str, graph: Graph, member: str, storage: Storage, settings: Settings
) -> Invocation | None:
    """The invocation that recovers ``member`` (an expired lease), or None if nothing is left
    to do (the task completed meanwhile)."""
    kind, number = member[0], int(member[1:])
    if kind == "t":
        state = await _states(run_id, graph, [number], storage)
        if state.get(number) is not None:
            return None
        worker = graph.worker(number)
        if worker is None:
            return await _recover_flexible(run_id, graph, number, storage, settings)
    elif kind == "w":
        worker = number
    else:
        raise ValueError(f"unknown lease member {member!r}")
    return await _recover_pinned(run_id, graph, worker, storage)


async def _recover_flexible(
    run_id: str, graph: Graph, task: int, storage: Storage, settings: Settings
) -> Invocation:
    states: dict[int, TaskState] = {task: None}
    recompute, start = await _recompute_for(run_id, graph, [task], states, storage)
    sub = graph.subdag_for(None, start)
    blob = sub.encode()
    if len(blob) <= settings.inline_subdag_limit:
        return Invocation(run_id, None, tuple(start), blob, None, {}, recompute, (task,))
    name = f"r{task}"
    await storage.put_subdag(run_id, name, seal(blob))
    return Invocation(run_id, None, tuple(start), None, name, {}, recompute, (task,))


async def _recover_pinned(
    run_id: str, graph: Graph, worker: int, storage: Storage
) -> Invocation | None:
    mine = graph.tasks_of(worker)
    needed = sorted(set(mine) | {d for t in mine for d in graph.deps(t)})
    states = await _states(run_id, graph, needed, storage)
    resume = [
        t for t in mine if states[t] is None and all(states[d] is not None for d in graph.deps(t))
    ]
    if all(states[t] is not None for t in mine):
        return None
    recompute, start = await _recompute_for(run_id, graph, resume, states, storage)
    skip = tuple(t for t in mine if states[t] is not None and t not in recompute)
    return Invocation(
        run_id, worker, tuple(start), None, f"w{worker}", {}, recompute, tuple(resume), skip
    )


async def _recompute_for(
    run_id: str,
    graph: Graph,
    resume: list[int],
    states: dict[int, TaskState],
    storage: Storage,
) -> tuple[tuple[int, ...], list[int]]:
    """Done tasks whose outputs must be recomputed for ``resume`` to run, and the tasks to
    start with (all inputs stored)."""
    recompute: set[int] = set()
    frontier = list(resume)
    while frontier:
        deps = sorted({d for t in frontier for d in graph.deps(t)} - set(states))
        if deps:
            states.update(await _states(run_id, graph, deps, storage))
        frontier = [
            d for t in frontier for d in graph.deps(t) if states[d] is False and d not in recompute
        ]
        recompute.update(frontier)
    todo = recompute | set(resume)
    start = sorted(t for t in todo if all(states.get(d) is True for d in graph.deps(t)))
    return tuple(sorted(recompute)), start
