"""End-to-end runtime: shoal's worker processes on Redis against Dask distributed, same graphs.

Both sides run on this machine with two single-threaded worker processes:

* shoal: ``Session(backend=LocalProcesses(max_workers=2))`` on an embedded server, warmed by one
  run first (warm worker processes, functions cached);
* Dask: ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`` with
  ``dask.delayed`` graphs of the same shape and functions, warmed the same way.

Every round builds a fresh graph on both sides (Dask keeps the results of keys it has computed,
so re-running one graph object measures nothing). Reported: the median and best end-to-end
time (graph submission to result in hand) and the ratio shoal / Dask (target <= 0.5).

Also measured: Redis commands per task, from ``INFO commandstats`` around one run (all
commands, including those executed inside Lua scripts) and from ``MONITOR`` (the commands
clients send; a script counts once); and worker start latency, cold (a new process: from the
invocation's enqueue to the worker ready, of which the process start) and warm (queue to
worker), from the runs' TASK_STARTED events.
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

import shoal
from shoal.backends.local import LocalProcesses
from shoal.events import TaskStarted
from shoal.server import EmbeddedServer

from .conftest import RUNTIME, dask_cluster, shoal_processes

ROUNDS = 5
TREE_LEAVES = 1024
FAN_WIDTH = 1000


def leaf(i: int) -> int:
    return (i * 7919) % 1000


def add(x: int, y: int) -> int:
    return x + y


def scale(x: int, k: int) -> int:
    return x * k


def total(xs: list[int]) -> int:
    return sum(xs)


def tree_graph(make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Any:
    """The same tree on either engine: ``make`` turns a plain function into a lazy one."""
    lf, ad = make(leaf), make(add)
    level = [lf(i) for i in range(TREE_LEAVES)]
    while len(level) > 1:
        level = [ad(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def fan_graph(make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Any:
    lf, sc, tot = make(leaf), make(scale), make(total)
    root = lf(3)
    return tot([sc(root, k) for k in range(FAN_WIDTH)])


SHAPES = {
    "tree-1k": (tree_graph, 2 * TREE_LEAVES - 1, sum(leaf(i) for i in range(TREE_LEAVES))),
    "fan-1k": (fan_graph, FAN_WIDTH + 2, sum(leaf(3) * k for k in range(FAN_WIDTH))),
}


def shoal_make(fn: Callable[..., Any]) -> Callable[..., Any]:
    return shoal.task(fn)


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer() as s:
        yield s


@pytest.fixture(scope="module")
def shoal_session(server: EmbeddedServer) -> Iterator[shoal.Session]:
    with shoal_processes(server.url) as s:
        s.compute(tree_graph(shoal_make))  # warm: processes started, functions cached
        yield s


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    dask = pytest.importorskip("dask")
    with dask_cluster() as client:
        tree_graph(dask.delayed).compute()  # warm
        yield client


@pytest.mark.parametrize("shape", list(SHAPES))
def test_end_to_end_vs_dask(
    benchmark: Any, shape: str, shoal_session: shoal.Session, dask_client: Any
) -> None:
    from dask.delayed import delayed

    build, tasks, expected = SHAPES[shape]

    def shoal_setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (build(shoal_make),), {}

    def shoal_run(node: Any) -> Any:
        return shoal_session.compute(node)[0]

    shoal_times: list[float] = []
    for _ in range(ROUNDS):
        node = build(shoal_make)
        t = time.perf_counter()
        assert shoal_run(node) == expected
        shoal_times.append(time.perf_counter() - t)
    dask_times: list[float] = []
    for _ in range(ROUNDS):
        node = build(delayed)
        t = time.perf_counter()
        assert node.compute() == expected
        dask_times.append(time.perf_counter() - t)
    # pytest-benchmark's own record of the shoal side (fresh graph per round, built in setup).
    benchmark.pedantic(shoal_run, setup=shoal_setup, rounds=3, iterations=1)
    RUNTIME[shape] = {
        "tasks": tasks,
        "shoal": shoal_times,
        "dask": dask_times,
    }


def _monitor(server: EmbeddedServer, stop: threading.Event, lines: list[str]) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(f"AUTH {server.password}\r\nMONITOR\r\n".encode())  # it requires one
        s.settimeout(0.2)
        buf = b""
        while not stop.is_set():
            try:
                chunk = s.recv(1 << 16)
            except TimeoutError:
                continue
            if not chunk:
                break
            buf += chunk
            *done, buf = buf.split(b"\r\n")
            lines.extend(x.decode(errors="replace") for x in done)


def test_redis_commands_per_task(server: EmbeddedServer, shoal_session: shoal.Session) -> None:
    r = redis.Redis.from_url(server.url)
    for shape, (build, tasks, expected) in SHAPES.items():
        node = build(shoal_make)
        stop = threading.Event()
        lines: list[str] = []
        mon = threading.Thread(target=_monitor, args=(server, stop, lines))
        mon.start()
        time.sleep(0.2)
        r.config_resetstat()
        assert shoal_session.compute(node)[0] == expected
        stats = r.info("commandstats")
        time.sleep(0.2)
        stop.set()
        mon.join()
        ignore = ("config|resetstat", "info", "monitor")
        all_calls = sum(v["calls"] for k, v in stats.items() if k.split("_", 1)[1] not in ignore)
        sent = [ln for ln in lines if ln.startswith("+") and " lua]" not in ln]
        sent = [ln for ln in sent if '"CONFIG"' not in ln and '"INFO"' not in ln]
        in_scripts = [ln for ln in lines if " lua]" in ln]
        RUNTIME.setdefault(shape, {}).update(
            {
                "cmds_all_per_task": all_calls / tasks,
                "cmds_sent_per_task": len(sent) / tasks,
                "cmds_lua_per_task": len(in_scripts) / tasks,
                "top_commands": _top(sent),
            }
        )
    r.close()


def _top(lines: list[str]) -> str:
    counts: dict[str, int] = {}
    for ln in lines:
        parts = ln.split('"')
        if len(parts) > 1:
            counts[parts[1].upper()] = counts.get(parts[1].upper(), 0) + 1
    best = sorted(counts.items(), key=lambda kv: -kv[1])[:5]
    return ", ".join(f"{k} {v}" for k, v in best)


def test_worker_start_latency(server: EmbeddedServer) -> None:
    """A fresh pool: its first invocation starts a process (cold); later one-task runs find an
    idle process (warm). Latency = invocation enqueued -> worker ready to run it."""
    cold: list[float] = []
    warm: list[float] = []
    proc: list[float] = []
    one = shoal_make(leaf)
    for _ in range(3):
        with shoal.Session(
            redis_url=server.url, backend=LocalProcesses(max_workers=1), progress=False
        ) as s:
            for _ in range(15):
                run = s.submit(one(1))
                run.result(timeout=120)
                for ev in run.events():
                    if isinstance(ev, TaskStarted) and ev.start_kind is not None:
                        assert ev.start_latency_s is not None
                        lat = ev.start_latency_s
                        (cold if ev.start_kind == "cold" else warm).append(lat)
                        if ev.process_start_s is not None:
                            proc.append(ev.process_start_s)
    RUNTIME["start latency"] = {"cold": cold, "warm": warm, "process": proc}


def runtime_summary_lines() -> list[str]:
    lines = [
        f"{'graph':10} {'tasks':>6} {'shoal med':>10} {'shoal min':>10} {'dask med':>10} "
        f"{'dask min':>10} {'ratio med':>10} {'cmd/task':>9} {'sent/task':>9}",
    ]
    for shape in SHAPES:
        r = RUNTIME.get(shape)
        if not r or "shoal" not in r:
            continue
        s_med, d_med = statistics.median(r["shoal"]), statistics.median(r["dask"])
        lines.append(
            f"{shape:10} {r['tasks']:>6} {s_med * 1e3:>8.0f}ms {min(r['shoal']) * 1e3:>8.0f}ms "
            f"{d_med * 1e3:>8.0f}ms {min(r['dask']) * 1e3:>8.0f}ms {s_med / d_med:>9.2f}x "
            f"{r.get('cmds_all_per_task', float('nan')):>9.2f} "
            f"{r.get('cmds_sent_per_task', float('nan')):>9.2f}"
        )
    for shape in SHAPES:
        r = RUNTIME.get(shape, {})
        if "top_commands" in r:
            lines.append(f"  {shape} commands sent: {r['top_commands']}")
    lat = RUNTIME.get("start latency")
    if lat:

        def med(xs: list[float]) -> str:
            return "-" if not xs else f"{statistics.median(xs) * 1e3:.1f} ms (n={len(xs)})"

        lines.append(
            f"worker start latency: cold {med(lat['cold'])} (process start "
            f"{med(lat['process'])}), warm {med(lat['warm'])}"
        )
    lines += [
        "",
        "ratio med   = shoal median / Dask distributed median (target <= 0.5x, never asserted)",
        "cmd/task    = INFO commandstats calls per task, including commands run inside Lua",
        "sent/task   = commands clients sent per task (MONITOR; one EVALSHA counts once;",
        "              target <= 3)",
        "start       = invocation enqueued -> worker ready to run it; cold includes starting",
        "              the Python process (process start = spawn -> ready)",
    ]
    return lines
