"""The ``shoal`` command line (click + rich)."""

from __future__ import annotations

import asyncio
import os
import runpy
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table

from . import __version__, events
from .config import redact_url
from .planners import NAMES as PLANNERS
from .session import SCHEDULERS, defaults

console = Console(stderr=True)
out = Console()


@click.group()
@click.version_option(__version__, prog_name="shoal")
def main() -> None:
    """shoal: Python task graphs on workers that schedule each other."""


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("script", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option(
    "--scheduler",
    type=click.Choice(SCHEDULERS),
    default="processes",
    show_default=True,
    help="processes: Redis + worker processes; sync/threads: in-process, in-memory.",
)
@click.option(
    "--redis",
    "redis_url",
    envvar="SHOAL_REDIS_URL",
    default=None,
    help="Redis/Valkey URL [env SHOAL_REDIS_URL; default: an embedded server for this run].",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Most worker processes at once [default: number of cores].",
)
@click.option(
    "--planner",
    type=click.Choice([*PLANNERS, "none"]),
    default=None,
    help="Who plans each run [env SHOAL_PLANNER; default: default]; none: all flexible.",
)
def run(
    script: Path,
    args: tuple[str, ...],
    scheduler: str,
    redis_url: str | None,
    workers: int | None,
    planner: str | None,
) -> None:
    """Run SCRIPT (a Python file) with its compute() calls on these settings.

    Arguments after the script name are passed to it in sys.argv.
    """
    old_argv = sys.argv
    sys.argv = [str(script), *args]
    folder = str(script.resolve().parent)
    sys.path.insert(0, folder)
    start = time.perf_counter()
    # Through the environment: sessions the script makes, and tasks' own compute() calls in
    # worker processes, plan with it too.
    old_planner = os.environ.get("SHOAL_PLANNER")
    if planner is not None:
        os.environ["SHOAL_PLANNER"] = planner
    try:
        with defaults(scheduler=scheduler, redis_url=redis_url, workers=workers):
            runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = old_argv
        sys.path.remove(folder)
        if old_planner is None:
            os.environ.pop("SHOAL_PLANNER", None)
        else:
            os.environ["SHOAL_PLANNER"] = old_planner
    elapsed = time.perf_counter() - start
    where = scheduler if scheduler != "processes" else "worker processes"
    console.print(f"[green]ran[/] {script} on {where} in {elapsed:.2f} s", soft_wrap=True)


def _server_url(redis_url: str | None) -> str:
    if not redis_url:
        raise click.UsageError(
            "this command reads a server: pass --redis URL or set SHOAL_REDIS_URL "
            "(an embedded server lives only as long as the script that started it)"
        )
    return redis_url


_redis_option = click.option(
    "--redis", "redis_url", envvar="SHOAL_REDIS_URL", default=None, help="Redis/Valkey URL."
)


def _with_storage(redis_url: str, work: Any) -> Any:
    from .storage.redis import RedisStorage

    async def go() -> Any:
        storage = RedisStorage(redis_url)
        try:
            return await work(storage)
        finally:
            await storage.close()

    import redis.exceptions

    try:
        return asyncio.run(go())
    except (OSError, redis.exceptions.ConnectionError) as e:
        raise click.ClickException(f"cannot reach {redact_url(redis_url)}: {e}") from None


@main.command()
@_redis_option
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
def runs(redis_url: str | None, limit: int) -> None:
    """List recent runs on a server (while their event streams are kept, one day)."""
    url = _server_url(redis_url)

    async def work(storage: Any) -> list[tuple[str, float, list[events.Event]]]:
        found = []
        for rid, submitted in await storage.recent_runs(limit):
            found.append((rid, submitted, _decoded(await storage.events_range(rid))))
        return found

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("submitted", no_wrap=True)
    table.add_column("tasks", justify="right", no_wrap=True)
    table.add_column("outputs", overflow="ellipsis", no_wrap=True, max_width=24)
    table.add_column("state", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("run", no_wrap=True, min_width=16)  # ids must stay whole: they are input
    for rid, submitted, evs in _with_storage(url, work):
        info = _summary(evs)
        table.add_row(
            time.strftime("%m-%d %H:%M:%S", time.localtime(submitted)),
            info["tasks"],
            info["names"],
            info["state"],
            info["duration"],
            rid,
        )
    out.print(table)


_metrics_option = click.option(
    "--metrics",
    "metrics_url",
    envvar="SHOAL_METRICS_URL",
    default=None,
    help="Where history is kept [env SHOAL_METRICS_URL; default: --redis's server if given, "
    "else ~/.cache/shoal/history].",
)


def _history(metrics_url: str | None, redis_url: str | None) -> Any:
    from .client.history import open_history

    found = open_history(metrics_url or redis_url, _NoStorage(), external=False)
    if found is None:
        raise click.ClickException("history is off (SHOAL_METRICS_URL=off)")
    return found


def _replay(metrics_url: str | None, redis_url: str | None, run_id: str) -> Any:
    h = _history(metrics_url, redis_url)

    async def work() -> Any:
        try:
            return await h.replay(run_id)
        finally:
            await h.store.close()

    return asyncio.run(work())


#: Published prices per GB-second (AWS Lambda, US East, 2026: x86 and Arm).
PRICES = {"lambda": 0.0000166667, "lambda-arm": 0.0000133334}


def _price(text: str | None) -> float | None:
    if text is None:
        return None
    if text in PRICES:
        return PRICES[text]
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise click.BadParameter(
            f"{text!r}: give a price per GB-second in dollars, or one of {', '.join(PRICES)}",
            param_hint="--price",
        )
    return value


@main.command()
@click.argument("run_id")
@_redis_option
@_metrics_option
@click.option(
    "--price",
    default=None,
    help=f"Price per GB-second for the cost line: dollars, or {', '.join(PRICES)}.",
)
def show(run_id: str, redis_url: str | None, metrics_url: str | None, price: str | None) -> None:
    """Print a run's tasks and timings (and what its plan predicted, when it had one)."""
    per_gb_s = _price(price)
    url = _server_url(redis_url)

    async def work(storage: Any) -> list[events.Event]:
        return _decoded(await storage.events_range(run_id))

    evs = _with_storage(url, work)
    if not evs:
        raise click.ClickException(f"no events for run {run_id!r} (unknown, or expired)")
    info = _summary(evs)
    out.print(f"run [bold]{run_id}[/]: {info['state']}, {info['tasks']} tasks, {info['duration']}")
    from .metrics.records import run_record

    summary = run_record(run_id, evs).summary
    line = (
        f"{summary.workers} workers ({summary.cold_starts} cold, {summary.warm_starts} warm), "
        f"{summary.gb_s:.3f} GB-s ({summary.busy_gb_s:.3f} busy)"
    )
    if per_gb_s is not None:
        line += f": ${summary.gb_s * per_gb_s:.8f} at ${per_gb_s:.10f}/GB-s"
    out.print(line, soft_wrap=True)
    first = evs[0]
    end = next((e for e in evs if e.type == events.RunCompleted.type), None)
    planned: dict[int, tuple[float, float]] = {}
    if isinstance(first, events.RunSubmitted) and first.planner:
        out.print(f"planned by {first.planner}", soft_wrap=True)
    if isinstance(first, events.RunSubmitted) and first.predicted_makespan_s is not None:
        makespan = first.predicted_makespan_s
        line = f"predicted makespan {makespan:.3f} s"
        if end is not None and end.at > first.at:
            actual = end.at - first.at
            line += f", actual {actual:.3f} s: error {(makespan - actual) / actual:+.1%}"
        out.print(line)
        try:
            replay = _replay(metrics_url, redis_url, run_id)
        except Exception as e:  # the run's own events are shown all the same
            console.print(f"[yellow]no per-task plan: the history cannot be read ({e})[/]")
            replay = None
        planned = {} if replay is None else replay.predicted
    out.print(_tasks_table(evs, planned))
    for ev in evs:
        if isinstance(ev, events.TaskFailed):
            out.print(f"[red]failed:[/] {ev.name}: {ev.exc_type}: {ev.message}")
            out.print(ev.traceback)


@main.command()
@_metrics_option
@_redis_option
def history(metrics_url: str | None, redis_url: str | None) -> None:
    """List what run history knows: functions, their samples and sizes, and workflows."""
    from .client.history import describe_store
    from .metrics.history import parse_size

    h = _history(metrics_url, redis_url)

    async def work() -> tuple[Any, Any]:
        try:
            return await h.listing(), await h.workflows()
        finally:
            await h.store.close()

    functions, workflows = asyncio.run(work())
    out.print(
        f"history in {describe_store(h)}: {len(functions)} functions, {len(workflows)} workflows",
        soft_wrap=True,
    )
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("function", overflow="fold")
    table.add_column("code", no_wrap=True)
    table.add_column("size", no_wrap=True)
    table.add_column("samples", justify="right", no_wrap=True)
    table.add_column("mean ms", justify="right", no_wrap=True)
    for f in functions:
        for size, sh in sorted(f.sizes.items()):
            mb, cpu = parse_size(size)
            n = sh.count
            mean = sh.sums.get("y", 0.0) / n * 1000 if n else 0.0
            label = f"{mb or '-'} MB" + (f", {cpu:g} cpu" if cpu else "")
            table.add_row(f.fn, f.code[:12], label, str(n), f"{mean:.3f}")
    out.print(table)


@main.command("what-if")
@click.argument("run_id")
@click.option(
    "--plan",
    type=click.Choice(["recorded", "flexible"]),
    default="recorded",
    show_default=True,
    help="recorded: the run's own plan; flexible: every task flexible (shares).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Pool size to replay on [default: the run's].",
)
@click.option(
    "--sla", default="average", show_default=True, help="average, or a percentile such as p95."
)
@_metrics_option
@_redis_option
def what_if_command(
    run_id: str,
    plan: str,
    workers: int | None,
    sla: str,
    metrics_url: str | None,
    redis_url: str | None,
) -> None:
    """Replay a recorded run's graph with its measured task times under another plan or pool."""
    from .errors import UsageError
    from .planning.whatif import what_if

    h = _history(metrics_url, redis_url)

    async def work() -> Any:
        try:
            return await what_if(h, run_id, plan=plan, slots=workers, sla=sla)
        finally:
            await h.store.close()

    try:
        found = asyncio.run(work())
    except UsageError as e:
        raise click.ClickException(str(e)) from None
    s = found.replay.summary
    actual = "-" if s.makespan_s is None else f"{s.makespan_s:.3f} s"
    out.print(
        f"run [bold]{run_id}[/]: {s.tasks} tasks, {s.slots or 'unbounded'} slots, makespan {actual}"
    )
    out.print(
        f"replayed as it ran: {found.as_run.makespan_s:.3f} s (the simulation of the run itself)"
    )
    ratio = found.changed.makespan_s / found.as_run.makespan_s if found.as_run.makespan_s else 0.0
    out.print(
        f"with plan {found.plan} on {found.slots or 'unbounded'} slots: "
        f"{found.changed.makespan_s:.3f} s ({ratio:.2f}x), {len(found.changed.workers)} workers, "
        f"{found.changed.gb_s:.3f} GB-s",
        soft_wrap=True,
    )


class _NoStorage:
    """A run store for :func:`open_history` when none is at hand (the CLI names its own)."""

    client = None


def _tasks_table(
    evs: list[events.Event], predicted: dict[int, tuple[float, float]] | None = None
) -> Table:
    """One row per task run, readable at 80 columns: map elements by their name alone
    (``parse[3]``), others with their id; workers without the host when there is one host;
    how the worker started for it: ``cold``, ``warm``, or ``chained`` (the worker went on to
    it from an earlier task of the same invocation, with no start of its own)."""
    t0 = evs[0].at
    started = [e for e in evs if isinstance(e, events.TaskStarted)]
    hosts = {e.worker.partition(":")[0] for e in started}
    kind_of: dict[tuple[int, int], str] = {}  # (task, attempt) -> how its worker started
    current: dict[str, str] = {}  # worker -> the start kind of its current invocation
    for e in started:
        if e.start_kind:
            current[e.worker] = e.start_kind
        kind_of[(e.task, e.attempt)] = e.start_kind or ("chained" if e.worker in current else "")
    # A buffered upload strategy sends a completion's bytes and optimizations apart from it.
    buffered = {(e.task, e.attempt, e.worker): e for e in evs if isinstance(e, events.TaskMetrics)}
    done = [e for e in evs if isinstance(e, events.TaskCompleted)]
    acted = any(e.optimizations for e in done) or any(e.optimizations for e in buffered.values())
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("task", overflow="fold")
    table.add_column("worker", overflow="fold")
    for title in ("start s", "run ms", "in", "out"):
        table.add_column(title, justify="right", no_wrap=True)
    if predicted:  # planned vs actual: the plan's execution of each task
        table.add_column("plan ms", justify="right", no_wrap=True)
    table.add_column("start", no_wrap=True)
    if acted:
        table.add_column("optimized", no_wrap=True)
    for ev in done:
        if ev.start is None or ev.end is None:
            continue  # a gathered map: its elements have the timings
        found: events.TaskCompleted | events.TaskMetrics = buffered.get(
            (ev.task, ev.attempt, ev.worker), ev
        )
        element = ev.name.endswith("]") and "[" in ev.name
        worker = ev.worker.partition(":")[2] if len(hosts) == 1 else ev.worker
        row = [
            ev.name if element else f"{ev.name} #{ev.task}",
            worker,
            f"+{ev.start - t0:.3f}",
            f"{(ev.end - ev.start) * 1000:.2f}",
            _size(found.input_bytes),
            _size(found.output_bytes),
        ]
        if predicted:
            plan = predicted.get(ev.task)
            row.append("-" if plan is None else f"{(plan[1] - plan[0]) * 1000:.2f}")
        row.append(kind_of.get((ev.task, ev.attempt), ""))
        if acted:
            row.append(",".join(found.optimizations))
        table.add_row(*row)
    return table


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _decoded(entries: list[tuple[str, dict[str, str]]]) -> list[events.Event]:
    return [events.decode(fields, entry_id) for entry_id, fields in entries]


def _summary(evs: list[events.Event]) -> dict[str, str]:
    first = evs[0] if evs else None
    kinds = {e.type for e in evs}
    state = (
        "completed"
        if "RUN_COMPLETED" in kinds
        else "failed"
        if "RUN_FAILED" in kinds
        else "cancelled"
        if "RUN_CANCELLED" in kinds
        else "running"
    )
    duration = "-"
    end = next((e for e in evs if e.type in events.TERMINAL), None)
    if first is not None and end is not None:
        # The run's makespan: RUN_SUBMITTED to its end, on the server's clock.
        duration = f"{end.at - first.at:.3f} s"
    submitted = first if isinstance(first, events.RunSubmitted) else None
    # Map elements are tasks too: known once each map chain's root has run.
    elements = sum(e.elements for e in evs if isinstance(e, events.MapExpanded))
    return {
        "tasks": "?" if submitted is None else str(submitted.tasks + elements),
        "names": "" if submitted is None else submitted.names,
        "state": state,
        "duration": duration,
    }


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
