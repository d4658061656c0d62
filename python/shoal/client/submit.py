"""Submitting a run: store what its workers need, announce it, invoke the first workers.

Submission stores the function table, constants and pinned workers' subDAGs in one storage call,
appends RUN_SUBMITTED, then invokes one worker per root group: the flexible roots are split into
shares by the platform's parallelism (``runtime/shares.py``), each share's worker getting the
subDAG below its roots (inline when small); each pinned worker with a root is invoked with its
roots, at its planned size. Every first invocation is leased as a hand-off at
submission (see :func:`shoal.storage.keys.leases`): one the platform loses is recovered.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from .. import events
from ..backends.base import Backend, Resources
from ..config import Settings
from ..graph import FrozenGraph
from ..identity import function_ids, workflow_id
from ..optimizations.policy import root_shares
from ..runtime.invocation import Invocation
from ..runtime.resources import resources_for, worker_resources
from ..serialize import seal_function
from ..signing import const_place, context, seal
from ..storage import keys
from ..storage.base import RunSpec, Storage


def new_run_id() -> str:
    return uuid.uuid4().hex[:16]


@dataclass
class Submitted:
    run_id: str
    frozen: FrozenGraph
    distinct_outputs: list[int]
    extra_keys: list[str]
    submitted_at: float


async def submit(
    frozen: FrozenGraph,
    storage: Storage,
    backend: Backend,
    settings: Settings,
    run_id: str | None = None,
) -> Submitted:
    run_id = run_id or new_run_id()
    graph = frozen.graph
    outputs = list(dict.fromkeys(frozen.output_ids))
    workers = [w for w in graph.partition() if w is not None]
    subdags = {f"w{w}": graph.subdag_for(w, []).encode() for w in workers}
    invocations: list[tuple[Invocation, Resources | None]] = []
    pinned_roots: dict[int, list[int]] = {}
    handed: list[str] = []
    flexible_roots: list[int] = []
    for root in graph.roots():
        w = graph.worker(root)
        if w is None:
            flexible_roots.append(root)
        else:
            pinned_roots.setdefault(w, []).append(root)
    parallelism = backend.capabilities.parallelism
    for share in root_shares(graph, flexible_roots, parallelism):
        handed.extend(keys.task_lease(root) for root in share)
        blob = graph.subdag_for(None, share).encode()
        res = resources_for(graph, share)
        if len(blob) <= settings.inline_subdag_limit:
            invocations.append(
                (Invocation(run_id, None, tuple(share), blob, None, metrics=settings.metrics), res)
            )
        else:
            name = f"t{share[0]}"
            subdags[name] = blob
            invocations.append(
                (Invocation(run_id, None, tuple(share), None, name, metrics=settings.metrics), res)
            )
    for w, roots in pinned_roots.items():
        res = worker_resources(graph, w, graph.tasks_of(w))
        invocations.append(
            (Invocation(run_id, w, tuple(roots), None, f"w{w}", metrics=settings.metrics), res)
        )
    spec = RunSpec(
        run_id=run_id,
        functions={h: seal_function(b, h) for h, b in frozen.functions.items()},
        constants={h: seal(b, const_place(run_id, h)) for h, b in frozen.constants.items()},
        subdags={name: seal(b, context(run_id, "subdag", name)) for name, b in subdags.items()},
        outputs=outputs,
        started_workers=list(pinned_roots),
        ttl_s=keys.RUN_TTL_S,
        events_ttl_s=keys.EVENTS_TTL_S,
        handed=handed + [keys.worker_lease(w) for w in pinned_roots],
    )
    now = await storage.server_time()  # one clock for every event of the run
    submitted = events.RunSubmitted(
        time=now,
        tasks=len(graph),
        outputs=len(outputs),
        names=", ".join(dict.fromkeys(graph.name(t) for t in outputs))[:200],
        planner="" if frozen.plan is None else frozen.plan.planner,
        workflow=workflow_id(graph, function_ids(frozen.live_functions)),
        predicted_makespan_s=None if frozen.plan is None else frozen.plan.makespan_s,
        slots=parallelism,
        warm=int(getattr(backend, "warm_processes", 0)),
    )
    await storage.submit(spec, events.encode(submitted))
    await backend.invoke_many([(inv.encode(), res) for inv, res in invocations])
    extra = [keys.inbox(run_id, w) for w in workers]
    return Submitted(run_id, frozen, outputs, extra, now)
