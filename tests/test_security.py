"""The secure default (DESIGN §6, README "Threat model"): with no setting at all, another local
user cannot talk to the embedded server or make its workers run code; a validly signed payload
moved to another place is refused; a small forged graph cannot make a worker allocate
gigabytes."""

from __future__ import annotations

import os
import pickle
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
import zstandard

import shoal
from shoal import _core
from shoal.backends import LocalProcesses
from shoal.backends.frames import encode_frame
from shoal.config import Settings
from shoal.graph import freeze
from shoal.runtime.invocation import Invocation
from shoal.server import EmbeddedServer
from shoal.storage import keys
from test_faults import wait_for_progress


@pytest.fixture
def no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default: nobody set SHOAL_SECRET (the session makes its own)."""
    monkeypatch.delenv("SHOAL_SECRET", raising=False)


@pytest.fixture
def default_session(no_secret: None) -> Iterator[shoal.Session]:
    """A session as a user gets it: embedded server, local worker processes, no settings."""
    with shoal.Session(backend=LocalProcesses(max_workers=1), progress=False) as s:
        yield s


@shoal.task
def add(*xs: int) -> int:
    return sum(xs)


def test_the_embedded_server_refuses_a_client_without_its_password() -> None:
    with EmbeddedServer() as server:
        stranger = redis.Redis(host="127.0.0.1", port=server.port)
        with pytest.raises(redis.AuthenticationError):
            stranger.rpush(keys.pool_queue("anything"), b"work")
        stranger.close()
        assert redis.Redis.from_url(server.url).ping()  # its own URL carries the password


def _command_lines() -> dict[int, str]:
    found = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                found[int(pid)] = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
    return found


def test_no_password_or_secret_is_on_a_command_line(default_session: shoal.Session) -> None:
    """Every local user can read every process's command line (``ps``)."""
    assert default_session.compute(add(1, 2)) == (3,)
    url = default_session.redis_url
    assert url is not None
    password = urlsplit(url).password
    assert password
    lines = _command_lines()
    assert any("shoal.runtime.process" in c for c in lines.values())  # the workers are up
    assert not [pid for pid, c in lines.items() if password in c]
    from shoal.signing import secret_for_workers

    secret = secret_for_workers()["SHOAL_SECRET"]
    assert not [pid for pid, c in lines.items() if secret in c]


class _Plant:
    """Unpickling this creates a file: the proof that a payload reached ``pickle.loads``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path(self.path).touch, ())


def test_a_forged_invocation_pushed_to_the_pool_queue_cannot_run_code(
    default_session: shoal.Session,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Even an attacker who has the server's password (the worst case: without it nothing
    reaches the queue at all) cannot make a worker unpickle anything."""
    s = default_session
    assert s.compute(add(1, 2)) == (3,)  # the pool is up
    backend = s.backend
    assert isinstance(backend, LocalProcesses)
    planted = [tmp_path / "unsigned", tmp_path / "own-secret"]
    unsigned = pickle.dumps(_Plant(str(planted[0])))
    monkeypatch.setenv("SHOAL_SECRET", "the attacker's own secret")
    forged = Invocation(
        "run-x", None, (0,), b"graph", None, {0: pickle.dumps(_Plant(str(planted[1])))}
    )
    signed_by_attacker = forged.encode()
    monkeypatch.delenv("SHOAL_SECRET")
    assert s.redis_url is not None
    attacker = redis.Redis.from_url(s.redis_url)
    queue = keys.pool_queue(backend.pool_id)
    attacker.rpush(queue, encode_frame(unsigned, None), encode_frame(signed_by_attacker, None))
    attacker.close()
    assert s.compute(add(3, 4)) == (7,)  # one worker, first in first out: both were refused
    assert [p.exists() for p in planted] == [False, False]
    err = capfd.readouterr().err
    assert "invocation refused: an invocation is not signed" in err
    assert "invocation refused: an invocation has a bad signature" in err


@shoal.task
def value(x: int) -> int:
    return x


@shoal.task
def gate(fifo: str) -> int:
    with open(fifo) as f:  # blocks until the test writes: the run waits here
        return int(f.read())


def test_a_swapped_signed_value_is_refused(no_secret: None, tmp_path: Path) -> None:
    """An attacker with the password copies a validly signed output over another task's."""
    fifo = str(tmp_path / "gate")
    os.mkfifo(fifo)
    a, b = value(41), value(99)
    out = add(a, gate(fifo), b)
    with shoal.Session(backend=LocalProcesses(max_workers=2), progress=False) as s:
        run = s.submit(out, a, b)  # a and b requested: both outputs are stored
        assert s.redis_url is not None
        wait_for_progress(s.redis_url, run.id, TASK_COMPLETED=2)  # a and b; the gate waits
        a_id, b_id = run._sub.frozen.output_ids[1:]
        r = redis.Redis.from_url(s.redis_url)
        stored = keys.outputs(run.id)
        r.hset(stored, str(a_id), r.hget(stored, str(b_id)) or b"")  # b's signed value, as a's
        r.close()
        opener = threading.Thread(target=lambda: Path(fifo).write_text("1"))
        opener.start()
        with pytest.raises(shoal.PayloadError, match="moved from another place"):
            run.result(timeout=60)
        opener.join()


def test_a_small_forged_graph_cannot_make_a_worker_allocate_gigabytes() -> None:
    blob = freeze((add(1),), Settings()).graph.encode()  # a real header
    payload = zstandard.ZstdCompressor(level=19).compress(b"\x00" * (64 << 20))
    forged = blob[:4] + b"\x01" + _core.hash16(payload)[:4] + payload
    assert len(forged) < 16_000  # claims a body of 64 MiB
    with pytest.raises(shoal.PayloadError, match="inflate beyond"):
        _core.Graph.decode(forged)  # what every worker runs on a subDAG
