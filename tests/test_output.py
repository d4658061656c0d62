"""What tasks print (issue 13): a worker process's stdout and stderr reach the client's own, line
by line, each line prefixed with the task that printed it and the process, before the run's
result; shoal's own diagnostics go through the ``shoal`` logger."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator

import pytest

import shoal
from conftest import assert_no_leaks, session_for
from shoal.backends import LocalProcesses


@shoal.task
def chatty(x: int) -> int:
    print(f"hello {x}")
    print(f"two\nlines {x}")
    print(f"careful {x}", file=sys.stderr)
    logging.getLogger("user").warning("a warning of the task's own %d", x)
    return os.getpid()


@shoal.task(name="quiet-one")
def quiet(pid: int) -> int:
    return pid


@pytest.fixture
def session(redis_url: str) -> Iterator[shoal.Session]:
    with session_for("processes", redis_url, workers=1) as s:
        yield s


def test_worker_output_reaches_the_client_prefixed_before_the_result(
    session: shoal.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    (pid,) = session.compute(chatty(3), timeout=60)
    out, err = capsys.readouterr()  # at once: the run's output came before its result
    tag = f"(chatty pid={pid}) "
    assert out.splitlines() == [f"{tag}hello 3", f"{tag}two", f"{tag}lines 3"]
    assert f"{tag}careful 3" in err.splitlines()
    assert f"{tag}a warning of the task's own 3" in err.splitlines()


def test_each_line_names_the_task_that_printed_it(
    session: shoal.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    (pid,) = session.compute(quiet(chatty(1)), timeout=60)
    session.compute(chatty(2), timeout=60)
    out = capsys.readouterr().out.splitlines()
    assert f"(chatty pid={pid}) hello 1" in out
    assert any(line.endswith(") hello 2") and line.startswith("(chatty pid=") for line in out)
    assert not any("quiet-one" in line for line in out)  # it printed nothing


def test_in_process_tasks_print_as_plain_python(capsys: pytest.CaptureFixture[str]) -> None:
    shoal.compute(chatty(4), scheduler="sync")
    out = capsys.readouterr().out
    assert out.splitlines() == ["hello 4", "two", "lines 4"]


def test_shoal_diagnostics_go_through_its_logger(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker process's death is a warning of the ``shoal.pool`` logger (not a bare print)."""

    @shoal.task
    def dies() -> int:
        os._exit(3)

    backend = LocalProcesses(max_workers=1)
    with (
        caplog.at_level(logging.WARNING, logger="shoal"),
        shoal.Session(redis_url=redis_url, backend=backend, progress=False) as s,
        pytest.raises(shoal.TaskError, match="crashed its worker"),
    ):
        s.compute(dies(), timeout=60)
    died = [r for r in caplog.records if r.name == "shoal.pool" and "died" in r.getMessage()]
    assert died and "exit code 3" in died[0].getMessage()
    assert_no_leaks(redis_url)


@shoal.task
def writes_bytes() -> int:
    sys.stdout.buffer.write(b"raw bytes\n")
    sys.stdout.buffer.flush()
    return 1


def test_binary_writes_still_work_unprefixed(
    session: shoal.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    assert session.compute(writes_bytes(), timeout=60) == (1,)
    assert "raw bytes" in capsys.readouterr().out.splitlines()
