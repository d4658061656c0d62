"""The research question of planning part 1: do runs that use optimizations produce different
metadata from runs that don't, and do the predictions account for that?

The optimization is task clustering (``shoal.optimizations.Cluster``) on every task with more
than one consumer: its worker keeps the fan-out instead of handing it to new workers. Per
example, on a fresh history (a directory store):

1. ``PLAIN`` runs without it, each in a fresh session (as in ``test_predictions.py``);
2. ``CLUSTERED`` runs with it, each predicted just before it runs from the history so far
   (plain runs only for the first, then plain and clustered);
3. more plain runs, each predicted from the mixed history.

Reported per example: how many tasks clustering acted on; per function, the median execution,
``prep`` (start round trip and fetch), fetched bytes and the gap between tasks, clustered
against plain; invocations per run; and the makespan and per-task errors of the predictions
of clustered runs (from plain history, then mixed) and of plain runs from mixed history; and
the functions whose history the predictor split into optimized and plain (by evidence:
``planning/predict.py``). Times are printed, never asserted.

Run:  .venv/bin/pytest benches/test_optimizations.py -q -s -p no:cacheprovider
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import shoal
from shoal.backends import LocalProcesses
from shoal.graph import freeze
from shoal.metrics.records import RunRecord, TaskSample
from shoal.optimizations import Cluster
from shoal.planning import Plan, TaskPlan
from shoal.planning.forecast import identities, load_predictions

from .conftest import _table
from .test_predictions import EXAMPLES, errors, run_once

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

PLAIN = 3
CLUSTERED = 3
AFTER = 2

RESULTS: dict[str, dict[str, Any]] = {}
PHASES: list[list[str]] = []


def clustered(node: Any) -> Plan:
    """Cluster on every static task with more than one consumer."""
    g = freeze([node]).graph
    fanning = [t for t in g.task_ids() if len({d.task for d in g.downstream(t)}) > 1]
    return Plan({t: TaskPlan(None, None, [Cluster()]) for t in fanning})


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _phases(records: list[RunRecord], acted: bool) -> dict[str, dict[str, float]]:
    """Per function: median exec, prep, fetched bytes and gap of its samples (only those
    clustering acted on, when ``acted``)."""
    by_fn: dict[str, list[TaskSample]] = {}
    for r in records:
        for s in r.samples:
            if acted and "cluster" not in s.optimizations:
                continue
            by_fn.setdefault(s.fn.rsplit(".", 1)[-1], []).append(s)
    return {
        fn: {
            "exec": _median([s.exec_s for s in ss]),
            "prep": _median([s.prep_s for s in ss if s.gap_s is None]),
            "gap": _median([s.gap_s for s in ss if s.gap_s is not None]),
            "bytes": _median([float(s.input_bytes) for s in ss]),
            "n": len(ss),
        }
        for fn, ss in by_fn.items()
    }


def _starts(r: RunRecord) -> int:
    return r.summary.cold_starts + r.summary.warm_starts


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    if not RESULTS:
        return
    print()
    print(
        f"clustering fan-outs: {PLAIN} plain runs, {CLUSTERED} clustered (predicted), "
        f"{AFTER} plain again (predicted from the mixed history); medians"
    )
    header = [
        "example",
        "acted",
        "invocations plain/clust",
        "makespan plain/clust s",
        "clust err (plain hist)",
        "clust err (mixed)",
        "plain err (mixed)",
        "clust task err",
        "history split for",
    ]
    rows = [
        [
            name,
            str(r["acted"]),
            f"{r['inv_plain']:.0f}/{r['inv_clust']:.0f}",
            f"{r['ms_plain']:.3f}/{r['ms_clust']:.3f}",
            r["err_first"],
            r["err_mixed"],
            r["err_after"],
            r["task_err"],
            r["split"],
        ]
        for name, r in RESULTS.items()
    ]
    for line in _table(rows, header):
        print(line)
    print()
    print("per function, the tasks clustering acted on against the same function in plain runs")
    header = ["example", "function", "n", "exec ms", "prep ms", "gap ms", "fetched B"]
    for line in _table(PHASES, header):
        print(line)


def _pct(values: list[float]) -> str:
    return f"{_median(values):.1%}" if values else "-"


def _ms(plain: float, clust: float) -> str:
    return f"{plain * 1e3:.3f} / {clust * 1e3:.3f}"


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_clustering_an_example(name: str) -> None:
    build = EXAMPLES[name]
    plan = clustered(build())
    with tempfile.TemporaryDirectory(prefix="shoal-history-") as folder:
        store = f"file://{folder}"
        plain = [run_once(store, build(), None)[0] for _ in range(PLAIN)]
        clust: list[RunRecord] = []
        err_first: list[float] = []
        err_mixed: list[float] = []
        task_err: list[float] = []
        for i in range(CLUSTERED):
            record, predicted, _ = run_once(store, build(), plan)
            m, t = errors(record, predicted)
            (err_first if i == 0 else err_mixed).append(m)
            task_err.append(t)
            clust.append(record)
        err_after = []
        for _ in range(AFTER):
            record, predicted, _ = run_once(store, build(), Plan())
            err_after.append(errors(record, predicted)[0])
        with shoal.Session(backend=LocalProcesses(max_workers=2), metrics_url=store) as s:
            frozen = freeze([build()])
            preds = s._run(load_predictions(frozen.graph, identities(frozen), s.history, "average"))
        split = sorted(
            fn.rsplit(":", 1)[-1] for (fn, _), m in preds.functions.items() if m.by_optimizations
        )
    acted = sum(1 for s in clust[-1].samples if "cluster" in s.optimizations)
    RESULTS[name] = {
        "acted": acted,
        "inv_plain": _median([float(_starts(r)) for r in plain]),
        "inv_clust": _median([float(_starts(r)) for r in clust]),
        "ms_plain": _median([r.summary.makespan_s or 0.0 for r in plain]),
        "ms_clust": _median([r.summary.makespan_s or 0.0 for r in clust]),
        "err_first": _pct(err_first),
        "err_mixed": _pct(err_mixed),
        "err_after": _pct(err_after),
        "task_err": _pct(task_err),
        "split": ", ".join(split) or "none",
    }
    before, after = _phases(plain, acted=False), _phases(clust, acted=True)
    for fn, c in after.items():
        p = before.get(fn)
        if p is None:
            continue
        PHASES.append(
            [
                name,
                fn,
                f"{p['n']:.0f}/{c['n']:.0f}",
                _ms(p["exec"], c["exec"]),
                _ms(p["prep"], c["prep"]),
                _ms(p["gap"], c["gap"]),
                f"{p['bytes']:.0f} / {c['bytes']:.0f}",
            ]
        )
