"""Cancelling a run (DESIGN §2): ``run.cancel()``, Ctrl-C, SIGTERM and SIGKILL of the client.
No task of a cancelled run starts after the cancellation, its keys are deleted, it reads
``cancelled``, and a killed client leaves no server or worker process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis

import shoal
from conftest import leaked_keys
from shoal.backends import LocalProcesses
from shoal.server import EmbeddedServer
from shoal.storage import keys
from test_faults import wait_for_progress


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer() as s:
        yield s


@shoal.task
def naps(s: float, *after: object) -> float:
    time.sleep(s)
    return s


def stream(url: str, run_id: str) -> list[dict[str, str]]:
    r = redis.Redis.from_url(url, decode_responses=True)
    try:
        entries: list[tuple[str, dict[str, str]]] = r.xrange(keys.events(run_id))  # type: ignore[assignment]
        return [fields for _, fields in entries]
    finally:
        r.close()


def assert_nothing_started_after_the_cancel(events: list[dict[str, str]], reason: str) -> None:
    kinds = [e["type"] for e in events]
    assert kinds.count("RUN_CANCELLED") == 1, kinds
    at = kinds.index("RUN_CANCELLED")
    assert events[at].get("reason") == reason
    assert "TASK_STARTED" not in kinds[at:], kinds[at:]
    assert not {"RUN_COMPLETED", "RUN_FAILED"} & set(kinds)


def a_long_graph() -> shoal.Node[Any]:
    first = naps(30.0)  # holds a slot until stopped
    return naps(0.0, *[naps(0.01, first, i) for i in range(20)])


def test_run_cancel_stops_the_run_and_frees_its_slots(server: EmbeddedServer) -> None:
    backend = LocalProcesses(max_workers=1, abandon_grace_s=0.2)
    with shoal.Session(redis_url=server.url, backend=backend, progress=False) as s:
        run = s.submit(a_long_graph())
        wait_for_progress(server.url, run.id, TASK_STARTED=1)
        assert run.cancel() is True
        assert run.cancel() is False  # it had ended already
        with pytest.raises(shoal.RunCancelled, match="cancelled"):
            run.result()
        assert s.compute(naps(0.0), timeout=30) == (0.0,)  # the one slot is free again
        assert_nothing_started_after_the_cancel(stream(server.url, run.id), "cancelled")
    assert leaked_keys(server.url) == []


def test_a_timed_out_run_reads_cancelled(server: EmbeddedServer) -> None:
    backend = LocalProcesses(max_workers=1, abandon_grace_s=0.2)
    with shoal.Session(redis_url=server.url, backend=backend, progress=False) as s:
        run = s.submit(a_long_graph())
        with pytest.raises(shoal.RunTimeout):
            run.result(timeout=1.0)
        assert_nothing_started_after_the_cancel(stream(server.url, run.id), "timeout")
    assert leaked_keys(server.url) == []


_CLIENT = """
import sys, time
import shoal
from shoal.backends import LocalProcesses

@shoal.task
def naps(s, *after):
    time.sleep(s)
    return s

url = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] != "embedded" else None
with shoal.Session(redis_url=url, backend=LocalProcesses(1, abandon_grace_s=0.2),
                   progress=False) as s:
    first = naps(30.0)
    run = s.submit(naps(0.0, *[naps(0.01, first, i) for i in range(20)]))
    server = s._server
    print("run", run.id, s.redis_url, s.backend.pool_id,
          server._dir.name if server else "-", flush=True)
    try:
        run.result()
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        print("next", s.compute(naps(0.0), timeout=30), flush=True)  # a notebook goes on
"""


def start_client(tmp_path: Path, url: str) -> tuple[subprocess.Popen[str], list[str]]:
    script = tmp_path / "client.py"
    script.write_text(textwrap.dedent(_CLIENT))
    proc = subprocess.Popen([sys.executable, str(script), url], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline().split()
    assert first[0] == "run", first
    return proc, first[1:]


def test_ctrl_c_in_the_client_cancels_the_run_and_the_next_compute_goes_on(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    proc, (run_id, *_) = start_client(tmp_path, server.url)
    wait_for_progress(server.url, run_id, TASK_STARTED=1)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "interrupted" in out and "next (0.0,)" in out
    assert_nothing_started_after_the_cancel(stream(server.url, run_id), "interrupted")
    assert leaked_keys(server.url) == []


def _alive_with(text: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except OSError:
            continue
        if text in cmd and state != "Z":
            found.append(int(pid))
    return found


def wait_gone(text: str, deadline_s: float = 20.0) -> list[int]:
    """The live processes whose command line holds ``text``, once none are left or the
    deadline passed (processes end asynchronously after their parent)."""
    end = time.monotonic() + deadline_s
    while (left := _alive_with(text)) and time.monotonic() < end:
        time.sleep(0.05)
    return left


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal: Linux")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_killed_client_leaves_no_server_or_worker_behind(tmp_path: Path, sig: int) -> None:
    proc, (run_id, url, pool_id, server_dir) = start_client(tmp_path, "embedded")
    assert server_dir != "-"
    wait_for_progress(url, run_id, TASK_STARTED=1)
    listening = f"127.0.0.1:{urlsplit(url).port}"  # how redis-server titles its process
    assert _alive_with(pool_id) and _alive_with(listening)  # workers and server are up
    proc.send_signal(sig)
    proc.communicate(timeout=60)  # waits, and closes its pipe
    assert wait_gone(pool_id) == []  # every worker process of its pool
    assert wait_gone(listening) == []  # its embedded server
    if sig == signal.SIGTERM:  # a clean exit: the server's folder is removed too
        assert not Path(server_dir).exists()
