"""Redis round trips and commands per task, as the server saw them (MONITOR), by who sent them.

Runs tree-1024 and chain-1000 on two worker processes against an embedded server while a
MONITOR connection records every command: top-level ones with the client that sent them
(connections are named ``shoal-worker``, ``shoal-client``, ``shoal-pool``: ``CLIENT LIST``
maps addresses to names) and those run inside scripts (``lua``). Reported per task: the
workers' top-level commands (an upper bound of their round trips: a pipeline's commands are
one round trip but show one by one), the commands inside scripts, and the client's share. The
server's own figures (INFO commandstats: calls and microseconds per script) are printed too.
Times and counts are printed, never asserted; a wrong result fails.

Run it: ``make bench`` or ``pytest benches/test_round_trips.py -s``.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import redis

import shoal
from shoal.backends.local import LocalProcesses
from shoal.server import EmbeddedServer

from .conftest import _table
from .tree_bench import chain, tree

STOP = "shoal-bench-monitor-stop"


def monitored(url: str, started: threading.Event, lines: list[dict[str, Any]]) -> None:
    r: Any = redis.Redis.from_url(url)  # redis-py's monitor() is untyped
    with r.monitor() as m:
        started.set()
        for cmd in m.listen():
            if STOP in cmd["command"]:
                return
            lines.append(cmd)


def names(url: str) -> dict[str, str]:
    """``host:port`` -> client name, of every connection now open."""
    r = redis.Redis.from_url(url)
    try:
        return {c["addr"]: c["name"] or "?" for c in r.client_list()}
    finally:
        r.close()


@pytest.mark.parametrize("graph", ["tree-1024", "chain-1000"])
def test_round_trips_per_task(graph: str) -> None:
    graphs: dict[str, tuple[Callable[[], shoal.Node[int]], int]] = {
        "tree-1024": (lambda: tree(1024), sum(range(1024))),
        "chain-1000": (lambda: chain(1000), 999),
    }
    build, expect = graphs[graph]
    with (
        EmbeddedServer() as server,
        shoal.Session(
            redis_url=server.url, backend=LocalProcesses(max_workers=2), progress=False
        ) as s,
    ):
        assert s.compute(build()) == (expect,)  # warm: processes up, functions cached
        node = build()
        tasks = len(shoal.graph.freeze([node]).graph)
        r = redis.Redis.from_url(server.url)
        r.config_resetstat()
        lines: list[dict[str, Any]] = []
        started = threading.Event()
        watcher = threading.Thread(target=monitored, args=(server.url, started, lines))
        watcher.start()
        started.wait(10)
        assert s.compute(node) == (expect,)
        who = names(server.url)
        r.echo(STOP)
        watcher.join(30)
        stats = r.info("commandstats")
        r.close()
    top: Counter[str] = Counter()
    inside = 0
    for cmd in lines:
        if cmd.get("client_type") == "lua":
            inside += 1
            continue
        addr = f"{cmd['client_address']}:{cmd['client_port']}"
        top[who.get(addr, "gone")] += 1
    worker = top["shoal-worker"] + top["gone"]  # a retired process's connection is gone
    rows = [
        [
            graph,
            f"{tasks:,}",
            f"{worker / tasks:.2f}",
            f"{inside / tasks:.1f}",
            f"{(worker + inside) / tasks:.1f}",
            f"{top['shoal-client'] / tasks:.2f}",
            f"{top['shoal-pool'] / tasks:.3f}",
        ]
    ]
    header = ["graph", "tasks", "worker trips", "in scripts", "worker cmds", "client", "pool"]
    print()
    print("\n".join(_table(rows, header)))
    scripts = {k: v for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval")}
    for k, v in scripts.items():
        print(f"  {k}: {v['calls']:,} calls, {v['usec_per_call']:.1f} us per call on the server")
