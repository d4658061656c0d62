"""Every storage key shoal uses, in one place.

Per-run keys carry the hash tag ``{<run_id>}`` so a whole run lives in one Redis Cluster slot and
one script may touch all of them. Cross-run keys (the function table) carry none.

Per run there is a fixed, small set of keys (outputs and counters are hashes, not one key per
task), so the client deletes a finished run by an explicit key list, never by SCAN.
"""

from __future__ import annotations

PREFIX = "shoal"

#: Safety-net lifetime of every key of a run (a run that outlives it has lost its state).
RUN_TTL_S = 7 * 24 * 3600
#: How long a run's event stream outlives the run (dashboard, ``shoal show``).
EVENTS_TTL_S = 24 * 3600
#: Lifetime of a function blob, refreshed by every run that uses it.
FUNCTION_TTL_S = 30 * 24 * 3600

#: Sorted set (no hash tag: shared): run id -> submission time, trimmed to live event streams;
#: each submission gives it the events' TTL, so it outlives the last run's stream by nothing.
RUNS_INDEX = f"{PREFIX}:runs"


def function(fn_hash: bytes) -> str:
    """A cloudpickled task function, by its 16-byte content hash (shared across runs), under
    the id of the secret that signed it (clients with different secrets keep apart)."""
    from ..signing import key_id

    return f"{PREFIX}:fn:{key_id()}:{fn_hash.hex()}"


#: Prefix of the run history's keys (shared, no hash tag; see :mod:`shoal.metrics.history`).
HISTORY = f"{PREFIX}:hist"


def history_functions() -> str:
    """Hash: function key -> ``name@code`` of every function with history."""
    return f"{HISTORY}:functions"


def history_aggregates(function_key: str) -> str:
    """Hash: ``<size>|<sum>`` -> running sums of one function's samples at each size."""
    return f"{HISTORY}:agg:{function_key}"


def history_samples(function_key: str, size: str) -> str:
    """List: one function's latest samples at one size, newest first (bounded)."""
    return f"{HISTORY}:samples:{function_key}:{size}"


def history_starts() -> str:
    """List: the latest worker starts (cold and warm), newest first (bounded)."""
    return f"{HISTORY}:starts"


def history_workflows() -> str:
    """Hash: workflow id -> its task count, as last recorded."""
    return f"{HISTORY}:workflows"


def history_runs(workflow: str) -> str:
    """List: a workflow's latest run summaries, newest first (bounded)."""
    return f"{HISTORY}:runs:{workflow}"


def history_run(run_id: str) -> str:
    """String: one recent run's graph, plan and per-task samples (for what-if replays)."""
    return f"{HISTORY}:run:{run_id}"


def persisted(value_id: str) -> str:
    """String: a value kept by ``Session.persist`` for later runs (no hash tag: it outlives
    its run), until released or its TTL runs out."""
    return f"{PREFIX}:persisted:{value_id}"


def run(run_id: str, part: str) -> str:
    return f"{PREFIX}:{{{run_id}}}:{part}"


def meta(run_id: str) -> str:
    """Hash: outputs_left, output ids, submit time."""
    return run(run_id, "meta")


def outputs(run_id: str) -> str:
    """Hash: task id -> encoded output (first writer wins)."""
    return run(run_id, "out")


def pending(run_id: str) -> str:
    """Hash: task id -> number of its dependencies completed so far."""
    return run(run_id, "pending")


def done(run_id: str) -> str:
    """Set: ids of completed tasks (makes completion idempotent)."""
    return run(run_id, "done")


def started(run_id: str) -> str:
    """Set: ids of pinned workers that were invoked already."""
    return run(run_id, "started")


def errors(run_id: str) -> str:
    """Hash: task id -> error record of a terminal failure."""
    return run(run_id, "errors")


def events(run_id: str) -> str:
    """Stream: the run's events (kept after the run, with a TTL)."""
    return run(run_id, "events")


def subdags(run_id: str) -> str:
    """Hash: name -> encoded subDAG (pinned workers' subDAGs, those too large to go inline)."""
    return run(run_id, "sub")


def constants(run_id: str) -> str:
    """Hash: content hash -> large argument constant."""
    return run(run_id, "const")


def widths(run_id: str) -> str:
    """Hash: map task id -> its width, recorded when its chain expands (see
    :mod:`shoal.runtime.elements`)."""
    return run(run_id, "maps")


def inbox(run_id: str, worker: int) -> str:
    """List: ids of tasks pinned to ``worker`` that became ready elsewhere."""
    return run(run_id, f"inbox:{worker}")


def leases(run_id: str) -> str:
    """Sorted set: lease member -> expiry (server ms). Members, by what they cover:

    - ``t<task>``: a ready task a live worker holds in its queue (renewed by it);
    - ``ht<task>`` / ``hw<worker>``: a *hand-off*: a ready flexible task, or a pinned worker,
      handed to the platform (by the client at submission, by a worker invoking peers) and not
      started yet; nobody renews it, the receiving worker's first START replaces it;
    - ``r<task>``: a task running on a worker (renewed by it); its expiry counts a crash;
    - ``w<worker>``: a pinned worker while it lives.
    """
    return run(run_id, "leases")


def crashes(run_id: str) -> str:
    """Hash: task id -> how each worker that ran it died (one line per death, oldest first)."""
    return run(run_id, "crashes")


def fail_keys(run_id: str) -> list[str]:
    """The keys of the ``FAIL`` script, in its order."""
    return [meta(run_id), errors(run_id), events(run_id)]


def crash_keys(run_id: str) -> list[str]:
    """The keys of the ``CRASHED`` script, in its order (the pool runs it without the store)."""
    return [meta(run_id), leases(run_id), crashes(run_id), events(run_id)]


def task_lease(task: int) -> str:
    return f"t{task}"


def running_lease(task: int) -> str:
    return f"r{task}"


def worker_lease(worker: int) -> str:
    return f"w{worker}"


#: Prefix of a hand-off lease: ``h`` + the member it becomes (``ht<task>``, ``hw<worker>``).
HANDOFF = "h"


def handoff_lease(member: str) -> str:
    return HANDOFF + member


def pool_queue(pool_id: str) -> str:
    """List: invocations waiting for a LocalProcesses worker process (per pool, not per run)."""
    return f"{PREFIX}:pool:{pool_id}:queue"


def fixed_run_keys(run_id: str) -> list[str]:
    """The per-run keys every run may create, apart from per-worker / per-constant ones."""
    return [
        meta(run_id),
        outputs(run_id),
        pending(run_id),
        done(run_id),
        started(run_id),
        errors(run_id),
        subdags(run_id),
        constants(run_id),
        leases(run_id),
        widths(run_id),
        crashes(run_id),
    ]
