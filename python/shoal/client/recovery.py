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

The decisions are pure (:func:`decide`, over a graph and the task states known so far, tested
without a store in ``tests/runtime/test_recovery.py``); :func:`recovery_invocation` looks up
the states they need and builds the invocation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .. import _core
from ..config import Settings
from ..runtime.elements import MapView, is_map
from ..runtime.invocation import Invocation
from ..signing import context, seal
from ..storage.base import Storage

#: Task state from the store: True = output stored, False = done (output not stored), None = not
#: done.
TaskState = bool | None


Graph = _core.Graph | MapView


@dataclass(frozen=True, slots=True)
class Need:
    """The decision needs the states of these tasks first."""

    tasks: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Recovery:
    """What to run again: the fields of the recovery :class:`Invocation`."""

    #: The pinned worker to re-invoke, or None for a new flexible worker.
    worker: int | None
    start: tuple[int, ...]
    recompute: tuple[int, ...]
    resume: tuple[int, ...]
    skip: tuple[int, ...] = ()


def decide(graph: Graph, member: str, states: Mapping[int, TaskState]) -> Recovery | Need | None:
    """What recovers ``member`` (an expired lease), given the store's ``states`` (as
    :meth:`Storage.task_states` reports them) of the tasks known so far: a :class:`Recovery`,
    None if nothing is left to do (the task completed meanwhile), or the :class:`Need` of more
    states. Pure: the caller looks the needed states up and asks again."""
    kind, number = member[0], int(member[1:])
    if kind == "t":
        if number not in states:
            return Need((number,))
        if _state(graph, states, number) is not None:
            return None
        worker = graph.worker(number)
        if worker is None:
            walked = _recompute_for(graph, [number], states)
            if isinstance(walked, Need):
                return walked
            recompute, start = walked
            return Recovery(None, start, recompute, (number,))
    elif kind == "w":
        worker = number
    else:
        raise ValueError(f"unknown lease member {member!r}")
    return _decide_pinned(graph, worker, states)


def _decide_pinned(
    graph: Graph, worker: int, states: Mapping[int, TaskState]
) -> Recovery | Need | None:
    mine = graph.tasks_of(worker)
    needed = sorted(set(mine) | {d for t in mine for d in graph.deps(t)})
    missing = tuple(t for t in needed if t not in states)
    if missing:
        return Need(missing)

    def done(t: int) -> bool:
        return _state(graph, states, t) is not None

    if all(done(t) for t in mine):
        return None
    resume = [t for t in mine if not done(t) and all(done(d) for d in graph.deps(t))]
    walked = _recompute_for(graph, resume, states)
    if isinstance(walked, Need):
        return walked
    recompute, start = walked
    skip = tuple(t for t in mine if done(t) and t not in recompute)
    return Recovery(worker, start, recompute, tuple(resume), skip)


def _recompute_for(
    graph: Graph, resume: list[int], states: Mapping[int, TaskState]
) -> tuple[tuple[int, ...], tuple[int, ...]] | Need:
    """Done tasks whose outputs must be recomputed for ``resume`` to run, and the tasks to
    start with (all inputs stored): walks up through done-but-unstored outputs."""
    recompute: set[int] = set()
    frontier = list(resume)
    while frontier:
        deps = {d for t in frontier for d in graph.deps(t)}
        missing = tuple(sorted(d for d in deps if d not in states))
        if missing:
            return Need(missing)
        frontier = [
            d
            for t in frontier
            for d in graph.deps(t)
            if _state(graph, states, d) is False and d not in recompute
        ]
        recompute.update(frontier)
    todo = recompute | set(resume)
    start = sorted(t for t in todo if all(_state(graph, states, d) is True for d in graph.deps(t)))
    return tuple(sorted(recompute)), tuple(start)


def _state(graph: Graph, states: Mapping[int, TaskState], task: int) -> TaskState:
    """A completed map counts as stored: its elements' outputs are."""
    got = states[task]
    return True if got is False and is_map(graph, task) else got


async def recovery_invocation(
    run_id: str, graph: Graph, member: str, storage: Storage, settings: Settings
) -> Invocation | None:
    """The invocation that recovers ``member`` (an expired lease), or None if nothing is left
    to do (the task completed meanwhile)."""
    states: dict[int, TaskState] = {}
    while isinstance(decision := decide(graph, member, states), Need):
        if any(t in states for t in decision.tasks):  # would never end
            raise RuntimeError(f"recovery asked twice for the states of {decision.tasks}")
        got = await storage.task_states(run_id, list(decision.tasks))
        states.update({t: got.get(t) for t in decision.tasks})
    if decision is None:
        return None
    r = decision
    metrics = settings.metrics
    if r.worker is not None:
        name = f"w{r.worker}"
        return Invocation(
            run_id, r.worker, r.start, None, name, {}, r.recompute, r.resume, r.skip, metrics
        )
    blob = graph.subdag_for(None, list(r.start)).encode()
    if len(blob) <= settings.inline_subdag_limit:
        return Invocation(run_id, None, r.start, blob, None, {}, r.recompute, r.resume, (), metrics)
    name = f"r{r.resume[0]}"
    await storage.put_subdag(run_id, name, seal(blob, context(run_id, "subdag", name)))
    return Invocation(run_id, None, r.start, None, name, {}, r.recompute, r.resume, (), metrics)
