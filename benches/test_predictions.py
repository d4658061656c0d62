"""How good the predictions are: every example, predicted before it runs, against what it did.

Per example, on a fresh history (a directory store shared by the sessions of that example):

1. three runs at the default worker size, each in a fresh session (embedded server, two
   worker processes: every run starts cold, as a newly started script does);
2. then ``FRESH`` runs at another worker size (``memory_mb=SIZE_B`` for every task, through the
   plan), each predicted by ``Session.simulate`` just before it runs, from the history so far.

Reported per example: the median over the fresh runs of |predicted - actual| / actual of the
makespan (RUN_SUBMITTED to RUN_COMPLETED), and the median over tasks of the same error of each
task's execution time, for shoal's predictor (per function, the best of a mean, a median and
a line in input bytes) and for the baseline (the mean of past samples of the function); the
noise floor (the makespan error of predicting each fresh run by the median of all of them, in
hindsight: no prediction made before a run beats the spread of the runs themselves); and
which model the predictor chose how often. Times are printed, never asserted.

Run:  .venv/bin/pytest benches/test_predictions.py -q -s -p no:cacheprovider
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import shoal
from shoal.backends import LocalProcesses
from shoal.events import decode
from shoal.graph import freeze
from shoal.metrics.records import RunRecord, run_record
from shoal.planning import Plan, Size, TaskPlan
from shoal.planning.forecast import forecast, frozen_workflow, identities, load_predictions
from shoal.planning.predict import Predictions
from shoal.planning.simulate import platform_of

from .conftest import _table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

import chains
import fan_out
import gemm
import image_pipeline
import log_scan
import montage
import tree_reduction
import word_count

HISTORY_RUNS = 3
FRESH = 5
SIZE_B = 1536
WORKERS = 2

EXAMPLES: dict[str, Callable[[], Any]] = {
    "tree reduction": lambda: tree_reduction.tree_sum(1024),
    "fan-out": lambda: fan_out.fan_out(1000),
    "word count": lambda: word_count.word_count(40, 5000, 5),
    "gemm": lambda: gemm.gemm(8, 128),
    "image pipeline": lambda: image_pipeline.image_pipeline(8, 128),
    "montage": lambda: montage.montage(6, 128),
    "chains": lambda: chains.chains(chains.LENGTHS, 0.005),
    "log scan": lambda: log_scan.log_scan(_logs(), slow_ms=450),
}

_LOGS: list[str] = []


def _logs() -> str:
    """64 files of 20,000 lines, written once for the module."""
    if not _LOGS:
        folder = tempfile.mkdtemp(prefix="shoal-logs-")
        log_scan.write_logs(folder, 64, 20_000)
        _LOGS.append(folder)
    return _LOGS[0]


RESULTS: dict[str, dict[str, Any]] = {}


def sized(node: Any, memory_mb: int) -> Plan:
    graph = freeze([node]).graph
    return Plan({t: TaskPlan(size=Size(memory_mb=memory_mb)) for t in graph.task_ids()})


def mean_only(p: Predictions) -> Predictions:
    """The baseline: each function's execution is the mean of its past samples."""
    models = {
        k: dataclasses.replace(m, exec=m.alternatives["mean"]) for k, m in p.functions.items()
    }
    return dataclasses.replace(p, functions=models)


def run_once(store: str, node: Any, plan: Plan | None) -> tuple[RunRecord, Any, Any]:
    """One fresh session: (the run's record, the plan as predicted, the baseline's plan)."""
    with shoal.Session(
        backend=LocalProcesses(max_workers=WORKERS), metrics_url=store, progress=False
    ) as s:
        predicted = baseline = None
        if plan is not None:
            frozen = freeze([node]).with_plan(plan)
            ident = identities(frozen)
            wf = frozen_workflow(frozen)
            preds = s._run(load_predictions(frozen.graph, ident, s.history, "average", wf))
            platform = platform_of(s.backend)
            predicted = forecast(frozen.graph, ident, preds, platform, plan, samples=0)
            baseline = forecast(frozen.graph, ident, mean_only(preds), platform, plan, samples=0)
        run = s.submit(node, plan=predicted if predicted is not None else plan)
        run.result(timeout=300)
        entries = s._run(s.storage.events_range(run.id))
    record = run_record(run.id, [decode(f, i) for i, f in entries])
    return record, predicted, baseline


def errors(record: RunRecord, plan: Any) -> tuple[float, float]:
    """(makespan error, median per-task execution error), relative to actual."""
    actual = record.summary.makespan_s
    assert actual is not None and plan is not None and plan.predicted is not None
    sim = plan.predicted
    per_task = [
        abs(sim.tasks[t].exec_s - s.exec_s) / s.exec_s
        for t, s in record.by_task.items()
        if t in sim.tasks and s.exec_s > 0
    ]
    return abs(sim.makespan_s - actual) / actual, statistics.median(per_task)


def floor(actuals: list[float]) -> float:
    """The makespan error of hindsight: predicting every fresh run by the median of all of
    them. No predictor made before a run can beat the spread of the runs themselves."""
    mid = statistics.median(actuals)
    return statistics.median(abs(mid - a) / a for a in actuals)


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    if not RESULTS:
        return
    rows = [
        [
            name,
            f"{r['actual']:.3f}",
            f"{r['predicted']:.3f}",
            f"{r['makespan']:.1%}",
            f"{r['base_makespan']:.1%}",
            f"{r['floor']:.1%}",
            f"{r['task']:.1%}",
            f"{r['base_task']:.1%}",
            r["models"],
        ]
        for name, r in RESULTS.items()
    ]
    header = [
        "example",
        "actual s",
        "pred s",
        "makespan err",
        "baseline",
        "noise floor",
        "task exec err",
        "baseline",
        "models (mean/median/linear)",
    ]
    print()
    print(
        f"predictions after {HISTORY_RUNS} runs at the default size, "
        f"{FRESH} fresh runs at {SIZE_B} MB (medians)"
    )
    for line in _table(rows, header):
        print(line)


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_predictions_of_an_example(name: str) -> None:
    build = EXAMPLES[name]
    with tempfile.TemporaryDirectory(prefix="shoal-history-") as folder:
        store = f"file://{folder}"
        for _ in range(HISTORY_RUNS):
            run_once(store, build(), None)
        found: dict[str, list[float]] = {k: [] for k in ("m", "bm", "t", "bt", "a", "p")}
        chosen: list[str] = []
        for _ in range(FRESH):
            node = build()
            record, plan, baseline = run_once(store, node, sized(node, SIZE_B))
            m, t = errors(record, plan)
            bm, bt = errors(record, baseline)
            for key, value in zip(["m", "bm", "t", "bt"], (m, bm, t, bt), strict=True):
                found[key].append(value)
            found["a"].append(record.summary.makespan_s or 0.0)
            found["p"].append(plan.predicted.makespan_s)
        with shoal.Session(backend=LocalProcesses(max_workers=WORKERS), metrics_url=store) as s:
            node = build()
            frozen = freeze([node])
            preds = s._run(load_predictions(frozen.graph, identities(frozen), s.history, "average"))
            chosen = [m.exec.kind for m in preds.functions.values()]
    RESULTS[name] = {
        "actual": statistics.median(found["a"]),
        "predicted": statistics.median(found["p"]),
        "makespan": statistics.median(found["m"]),
        "base_makespan": statistics.median(found["bm"]),
        "floor": floor(found["a"]),
        "task": statistics.median(found["t"]),
        "base_task": statistics.median(found["bt"]),
        "models": "/".join(str(chosen.count(k)) for k in ("mean", "median", "linear")),
    }
