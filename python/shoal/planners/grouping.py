"""Grouping tasks onto a given number of workers, by predicted finish time.

:func:`assign` walks the graph in dependency order and puts each task on the worker where it
would finish first (the earliest-finish-time rule of list scheduling, HEFT's): a worker is
free when its previous task ends; a task can start once its inputs are there, at once for an
input made on the same worker, after the producer's store and this worker's fetch for one
made elsewhere. So chains stay together (moving one costs a transfer and gains nothing), a
fan-out spreads over workers only as far as the work of its branches pays for the
transfers, and a fan-in goes where its inputs are cheapest to reach, which is where most of
their bytes already are. Ties go to the worker holding the most input bytes, then the lowest
id.

The costs are the predictions' own (:class:`~shoal.planning.predict.Predictions`): each
function's execution, output bytes, the gap between a worker's tasks, the store of an output
and the fetch of an input by its bytes, and a worker's start (dispatch plus a warm start).
Map tasks cannot be pinned (their elements go where their chains run): they stay flexible,
and count as ready when their inputs are, taking their predicted execution times the width
the last run recorded, spread over the platform's slots.

State: per worker, when it is next free and what it holds; per task, its worker, when it
ends and its predicted output bytes. The estimate of the makespan this gives is coarse (no
slot queueing, no parking); planners compare candidates with the simulation, not with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .. import _core
from ..planning.predict import Predictions
from ..runtime.elements import MapView, view

Identity = Callable[[int], tuple[str, str]]


@dataclass
class Assignment:
    #: Task -> worker id, for every static (non-map) task.
    workers: dict[int, int]
    #: The greedy schedule's own makespan estimate (seconds).
    estimate_s: float


def assign(
    graph: _core.Graph,
    q: Predictions,
    identity: Identity,
    count: int,
    slots: int | None,
    widths: dict[str, int] | None = None,
) -> Assignment:
    """Each static task of ``graph`` on one of ``count`` workers (ids 0 .. count-1)."""
    g = view(graph)
    maps = g if isinstance(g, MapView) else None
    free = [0.0] * count
    started = [False] * count
    start_cost = q.start_s("warm") + q.dispatch_s()
    local_step = q.gap_s(0.0)
    where: dict[int, int] = {}
    ends: dict[int, float] = {}
    out: dict[int, float] = {}
    for t in graph.topo_order():
        deps = list(dict.fromkeys(graph.deps(t)))
        fn, code = identity(t)
        in_bytes = sum(out.get(d, 0.0) for d in deps)
        if maps is not None and maps.is_map(t):
            width = (widths or {}).get(maps.name(t), 1)
            ready = max((ends.get(d, 0.0) for d in deps), default=0.0)
            per = q.exec_s(fn, code, in_bytes) + local_step
            ends[t] = ready + per * width / max(1, slots or width)
            out[t] = q.output_bytes(fn, code, in_bytes) * width
            continue
        best: tuple[float, float, int] | None = None
        for w in range(count):
            ready = 0.0
            held = 0.0
            for d in deps:
                produced = ends.get(d, 0.0)
                if where.get(d) == w:
                    held += out.get(d, 0.0)
                    ready = max(ready, produced)
                else:
                    size = out.get(d, 0.0)
                    moved = q.store_s(size) + max(0.0, q.gap_s(size) - local_step)
                    ready = max(ready, produced + moved)
            begin = max(free[w], ready) + (local_step if started[w] else start_cost)
            fetched = in_bytes - held
            end = begin + q.exec_s(fn, code, fetched)
            key = (end, -held, w)
            if best is None or key < best:
                best = key
        assert best is not None
        end, _, w = best
        where[t], ends[t], free[w], started[w] = w, end, end, True
        out[t] = q.output_bytes(fn, code, in_bytes)
    return Assignment(where, max(ends.values(), default=0.0))


def candidate_counts(tasks: int, slots: int | None) -> list[int]:
    """The worker counts worth comparing: one, and the platform's slots up to twice over."""
    s = slots or 4
    found = {1, max(1, s // 2), s, 2 * s}
    return sorted(c for c in found if c <= max(1, tasks))
