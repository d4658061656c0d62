"""Shared plumbing of the benchmarks: a results store and the summary table printed at the end.

Benchmarks live outside the default test run (``testpaths = ["tests"]``). Run them with::

    .venv/bin/pytest benches -q -s --benchmark-disable-gc --benchmark-min-rounds=3

(``--benchmark-only`` and plain ``pytest benches`` work too; with ``--benchmark-disable`` the
timings fall back to a few ``time.perf_counter`` runs). Benchmarks print figures and never assert
wall time; the acceptance section of the table marks each target ``ok`` or ``MISS``.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from typing import Any

import pytest

#: Figures by graph name, filled in by the benchmarks (insertion order = table order).
RESULTS: dict[str, dict[str, Any]] = {}
#: End-to-end runtime figures (``test_runtime_vs_dask.py``).
RUNTIME: dict[str, dict[str, Any]] = {}
#: The example workflows on shoal, Dask threads and Dask distributed (``test_examples_vs_dask.py``).
EXAMPLES: dict[str, dict[str, Any]] = {}
#: Dynamic fan-out (``shoal.map``) against static graphs and Dask futures (``test_map_vs_dask.py``).
MAPS: dict[str, dict[str, Any]] = {}
#: Fixed costs: encoding, subDAG retrieval, per-task overhead, invocation bytes
#: (``test_overheads.py``).
OVERHEADS: dict[str, dict[str, Any]] = {}

# Acceptance targets (checked in the summary, never asserted).
LEAF_SUBDAG_MAX_BYTES = 512
TREE_BYTES_PER_TASK_MAX = 40.0
SIZE_RATIO_MIN = 10.0
BIG_GRAPH_SECONDS_MAX = 1.0

TREE = "tree-1k"
BIG = "tree-100k"


@contextlib.contextmanager
def shoal_processes(redis_url: str | None = None) -> Iterator[Any]:
    """The shoal side of every bench: 2 worker processes (LocalProcesses) on ``redis_url``, or
    on an embedded server started for the purpose."""
    import shoal
    from shoal.backends.local import LocalProcesses
    from shoal.server import EmbeddedServer

    with contextlib.ExitStack() as stack:
        if redis_url is None:
            redis_url = stack.enter_context(EmbeddedServer()).url
        yield stack.enter_context(
            shoal.Session(
                redis_url=redis_url, backend=LocalProcesses(max_workers=2), progress=False
            )
        )


@contextlib.contextmanager
def dask_cluster(*, set_as_default: bool = True) -> Iterator[Any]:
    """The Dask distributed every bench compares with: 2 worker processes x 1 thread, here."""
    pytest.importorskip("dask")
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster, set_as_default=set_as_default) as client,
    ):
        yield client


@pytest.fixture(scope="session")
def encoding_results() -> dict[str, dict[str, Any]]:
    """Where the graph-encoding benchmarks put their figures for the summary table."""
    return RESULTS


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.2f}"


def _num(value: float | int | None, fmt: str = ",") -> str:
    return "-" if value is None else format(value, fmt)


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or not den:
        return None
    return num / den


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x"


def _table(rows: list[list[str]], header: list[str]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return [line(header), rule, *(line(r) for r in rows)]


def summary_lines(results: dict[str, dict[str, Any]]) -> list[str]:
    """The table of figures, ratios and acceptance checks (also used by tests of this file)."""
    header = [
        "graph",
        "tasks",
        "shoal ms",
        "shoal B",
        "B/task",
        "+fn B",
        "leaf sub B",
        "pickle ms",
        "conv+pkl ms",
        "pickle B",
        "B ratio",
        "t ratio",
        "t ratio conv",
        "nodes B",
        "nodes ratio",
    ]
    rows = []
    for name, r in results.items():
        shoal = r.get("shoal", {})
        pkl = r.get("pickle", {})
        conv = r.get("convert_pickle", {})
        shoal_s = shoal.get("seconds")
        rows.append(
            [
                name,
                _num(r.get("tasks")),
                _ms(shoal_s),
                _num(shoal.get("bytes")),
                _num(shoal.get("bytes_per_task"), ".2f"),
                _num(shoal.get("function_bytes")),
                _num(shoal.get("leaf_subdag_max_bytes")),
                _ms(pkl.get("seconds")),
                _ms(conv.get("seconds")),
                _num(pkl.get("bytes")),
                _x(_ratio(pkl.get("bytes"), shoal.get("bytes"))),
                _x(_ratio(pkl.get("seconds"), shoal_s)),
                _x(_ratio(conv.get("seconds"), shoal_s)),
                _num(r.get("pickle_nodes", {}).get("bytes")),
                _x(_ratio(r.get("pickle_nodes", {}).get("bytes"), shoal.get("bytes"))),
            ]
        )
    lines = _table(rows, header)
    lines += [
        "",
        "shoal ms     = freeze + partition + encode (median); Node graph built outside the timing",
        "shoal B      = graph.encode() of the whole graph; +fn B = function blobs (stored once,",
        "               not part of the graph bytes)",
        "leaf sub B   = max over roots of graph.subdag_for(None, [root]).encode(): what a worker",
        "               starting at a root is sent (fan-1k's one root feeds everything, so its",
        "               subDAG is the whole graph)",
        "pickle       = cloudpickle.dumps of plain nested (func, args[, kwargs]) tuples, what a",
        "               naive engine ships; shared upstreams are shared objects (pickle memo)",
        "pickle ms    = the dumps alone; conv+pkl ms = Node -> tuples conversion plus the dumps",
        "B ratio      = pickle B / shoal B; t ratio = pickle ms / shoal ms;",
        "t ratio conv = conv+pkl ms / shoal ms",
        "nodes B      = cloudpickle of the lazy Node graph itself (the issue's baseline: each",
        "               node as a picklable object with its attributes); nodes ratio = nodes B /",
        "               shoal B",
    ]
    notes = sorted({n for r in results.values() for n in r.get("notes", [])})
    lines += [f"note: {n}" for n in notes]

    lines += ["", "acceptance checks (targets; never asserted):"]
    tree = results.get(TREE, {})
    big = results.get(BIG, {})
    tree_shoal = tree.get("shoal", {})
    checks: list[tuple[str, float | int | None, str, bool | None]] = []
    leaf = tree_shoal.get("leaf_subdag_max_bytes")
    checks.append(
        (
            f"{TREE} leaf subDAG bytes (max over roots) <= {LEAF_SUBDAG_MAX_BYTES}",
            leaf,
            _num(leaf),
            None if leaf is None else leaf <= LEAF_SUBDAG_MAX_BYTES,
        )
    )
    bpt = tree_shoal.get("bytes_per_task")
    checks.append(
        (
            f"{TREE} whole graph bytes/task <= {TREE_BYTES_PER_TASK_MAX:g}",
            bpt,
            _num(bpt, ".2f"),
            None if bpt is None else bpt <= TREE_BYTES_PER_TASK_MAX,
        )
    )
    for name, r in results.items():
        ratio = _ratio(r.get("pickle_nodes", {}).get("bytes"), r.get("shoal", {}).get("bytes"))
        checks.append(
            (
                f"{name} size ratio cloudpickle(node graph)/shoal >= {SIZE_RATIO_MIN:g}x",
                ratio,
                _x(ratio),
                None if ratio is None else ratio >= SIZE_RATIO_MIN,
            )
        )
    secs = big.get("shoal", {}).get("seconds")
    checks.append(
        (
            f"{BIG} ({_num(big.get('tasks'))} tasks) freeze+partition+encode "
            f"<= {BIG_GRAPH_SECONDS_MAX:g} s",
            secs,
            "-" if secs is None else f"{secs:.3f} s",
            None if secs is None else secs <= BIG_GRAPH_SECONDS_MAX,
        )
    )
    width = max(len(c[0]) for c in checks)
    for label, _value, shown, ok in checks:
        mark = "n/a (not run)" if ok is None else ("ok" if ok else "MISS")
        lines.append(f"  {label.ljust(width)}  {shown:>10}  {mark}")
    return lines


#: The summary sections: (results, module, function returning the lines, title), in order.
SECTIONS: list[tuple[dict[str, dict[str, Any]], str, str, str]] = [
    (RUNTIME, "test_runtime_vs_dask", "runtime_summary_lines",
     "shoal end to end vs Dask distributed (2 workers x 1 thread)"),
    (EXAMPLES, "test_examples_vs_dask", "examples_summary_lines",
     "example workflows: shoal vs Dask threads and Dask distributed"),
    (MAPS, "test_map_vs_dask", "maps_summary_lines",
     "shoal.map over run-time lists vs static graphs and Dask futures"),
    (OVERHEADS, "test_overheads", "overheads_summary_lines",
     "shoal fixed costs: encoding, subDAG fetch, per task, per invocation"),
]  # fmt: skip


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    if RESULTS:
        terminalreporter.section("shoal graph encoding vs cloudpickle")
        for line in summary_lines(RESULTS):
            terminalreporter.write_line(line)
    for results, module, function, title in SECTIONS:
        if results:
            lines = getattr(importlib.import_module(f".{module}", __package__), function)()
            terminalreporter.section(title)
            for line in lines:
                terminalreporter.write_line(line)
