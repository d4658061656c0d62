"""A failed task raises its own exception on the client (issue 13): an instance of both
``TaskError`` and the task's exception type, with its args, attributes and frames, so
``except KeyError`` catches it and a debugger stops at the user's line; helpers keep their file
and line; a module the worker lacks is named as such; the user's own modules travel by value."""

from __future__ import annotations

import base64
import io
import json
import os
import pdb
import pickle
import subprocess
import sys
import textwrap
import threading
import traceback
from pathlib import Path
from types import TracebackType

import pytest
from hypothesis import given
from hypothesis import strategies as st

import shoal
from shoal import events
from shoal.client import remote_error
from shoal.client.remote_error import task_error
from shoal.serialize import dumps_value, error_place


def helper_that_raises(key: str) -> int:
    table: dict[str, int] = {}
    return table[key]  # HELPER_LINE


HELPER_LINE = helper_that_raises.__code__.co_firstlineno + 2


@shoal.task
def looks_up(key: str) -> int:
    return helper_that_raises(key)


LOOKS_UP_LINE = looks_up.func.__code__.co_firstlineno + 2


class Rejected(ValueError):
    """A user's exception with a field of its own."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message, code)
        self.code = code


@shoal.task
def rejects(code: int) -> int:
    raise Rejected(f"rejected with {code}", code)


class HoldsALock(RuntimeError):
    def __init__(self) -> None:
        super().__init__("holds a lock")
        self.lock = threading.Lock()  # cannot be pickled: the exception cannot travel


@shoal.task
def raises_unpicklable() -> int:
    raise HoldsALock()


@shoal.task
def opens(path: str) -> str:
    with open(path) as f:
        return f.read()


def last_frame(tb: TracebackType | None) -> TracebackType:
    assert tb is not None
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb


def test_except_keyerror_catches_a_tasks_keyerror(scheduler: str) -> None:
    with pytest.raises(KeyError) as info:
        looks_up("absent").compute(scheduler=scheduler)
    err = info.value
    assert isinstance(err, shoal.TaskError)
    assert err.args == ("absent",)
    assert isinstance(err.cause, KeyError) and err.cause.args == ("absent",)
    assert (err.task, err.exc_type) == ("looks_up", "KeyError")
    assert type(err).__name__ == "TaskError(KeyError)"


def test_the_traceback_ends_in_the_users_frames_with_file_and_line(scheduler: str) -> None:
    """The task's frames and its helper's, each with this file and its line, in every mode
    (cloudpickle alone would name them ``<dynamic-code>`` in processes mode)."""
    with pytest.raises(shoal.TaskError) as info:
        looks_up("absent").compute(scheduler=scheduler)
    tb = info.value.__traceback__
    frames = []
    while tb is not None:
        frames.append((tb.tb_frame.f_code.co_filename, tb.tb_frame.f_code.co_name, tb.tb_lineno))
        tb = tb.tb_next
    assert frames[-2:] == [
        (__file__, "looks_up", LOOKS_UP_LINE),
        (__file__, "helper_that_raises", HELPER_LINE),
    ]
    text = info.value.traceback
    assert f'"{__file__}", line {HELPER_LINE}, in helper_that_raises' in text
    assert "<dynamic-code>" not in text


def test_pdb_post_mortem_stops_at_the_users_line(scheduler: str) -> None:
    with pytest.raises(shoal.TaskError) as info:
        looks_up("absent").compute(scheduler=scheduler)
    out = io.StringIO()
    debugger = pdb.Pdb(stdin=io.StringIO("where\nlist\nquit\n"), stdout=out, nosigint=True)
    debugger.reset()
    debugger.interaction(None, info.value.__traceback__)
    shown = out.getvalue()
    # pdb's own report of the frame it stopped in: this file, the helper's line and name.
    assert f"> {__file__}({HELPER_LINE})helper_that_raises()" in shown
    assert "return table[key]  # HELPER_LINE" in shown  # `list` read the user's source


def test_no_error_text_mentions_the_bridges_event_loop(scheduler: str) -> None:
    with pytest.raises(shoal.TaskError) as info:
        looks_up("absent").compute(scheduler=scheduler)
    text = "".join(traceback.format_exception(info.value))
    assert "no running event loop" not in text
    assert info.value.__context__ is None and info.value.__cause__ is None


def test_a_users_exception_keeps_its_type_and_fields(scheduler: str) -> None:
    with pytest.raises(Rejected) as info:
        rejects(7).compute(scheduler=scheduler)
    assert isinstance(info.value, shoal.TaskError)
    assert info.value.code == 7
    assert info.value.args == ("rejected with 7", 7)


def test_builtin_fields_travel_too(scheduler: str, tmp_path: Path) -> None:
    missing = str(tmp_path / "absent.txt")
    with pytest.raises(FileNotFoundError) as info:
        opens(missing).compute(scheduler=scheduler)
    assert (info.value.errno, info.value.filename) == (2, missing)


def test_an_exception_that_cannot_travel_is_still_a_task_error_with_its_text(
    scheduler: str,
) -> None:
    with pytest.raises(shoal.TaskError) as info:
        raises_unpicklable().compute(scheduler=scheduler)
    assert not isinstance(info.value, RuntimeError)
    assert info.value.cause is None
    assert (info.value.exc_type, info.value.message) == ("HoldsALock", "holds a lock")
    assert "raise HoldsALock()" in info.value.traceback


def test_a_task_timeout_is_a_timeout_error() -> None:
    @shoal.task(timeout_s=0.05)
    def sleeps() -> None:
        threading.Event().wait(5)

    with pytest.raises(TimeoutError) as info:
        sleeps().compute(scheduler="threads")
    assert isinstance(info.value, shoal.TaskError) and info.value.exc_type == "TaskTimeout"


def test_a_rebuilt_error_pickles_with_its_type_and_cause(scheduler: str) -> None:
    with pytest.raises(shoal.TaskError) as info:
        rejects(3).compute(scheduler=scheduler)
    again = pickle.loads(pickle.dumps(info.value))
    assert type(again) is type(info.value)
    assert isinstance(again, Rejected) and again.code == 3
    assert str(again) == str(info.value)


def failed_event(run_id: str, task: int, exception: bytes, frames: str = "") -> events.TaskFailed:
    return events.TaskFailed(
        task=task,
        name="t",
        exc_type="KeyError",
        message="'k'",
        traceback="Traceback ...",
        exception=base64.b64encode(exception).decode(),
        frames=frames,
    )


def test_an_exception_sealed_for_another_place_is_never_unpickled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A blob sealed for another task (or run) is refused before unpickling: the error is then
    built from the event's text alone (a built-in type named by it)."""
    forged = dumps_value(Rejected("forged", 1), error_place("other-run", 3))
    with caplog.at_level("WARNING", logger="shoal"):
        err = task_error(failed_event("run", 3, forged), "run")
    assert isinstance(err, shoal.TaskError) and isinstance(err, KeyError)
    assert not isinstance(err, Rejected) and err.cause is None
    assert "was refused" in caplog.text
    good = dumps_value(Rejected("real", 1), error_place("run", 3))
    assert isinstance(task_error(failed_event("run", 3, good), "run"), Rejected)


def test_garbled_frames_leave_the_error_without_them() -> None:
    err = task_error(failed_event("run", 1, b"", frames="[[1, 2]"), "run")
    assert isinstance(err, KeyError) and err.__traceback__ is None


positions = st.tuples(
    st.integers(1, 100_000), st.integers(0, 50), st.integers(0, 300), st.integers(0, 300)
)


@given(positions)
def test_a_rebuilt_frame_has_the_remote_position(pos: tuple[int, int, int, int]) -> None:
    """Line, end line and columns of a stand-in frame are the remote instruction's, so carets
    drawn under it mark the same characters as on the worker."""
    line, more, col, end_col = pos
    frames = json.dumps([["/p/user.py", "f", line, "user", line + more, col, end_col]])
    tb = remote_error._frames(frames)
    assert tb is not None and tb.tb_next is None
    code = tb.tb_frame.f_code
    assert (code.co_filename, code.co_name, tb.tb_lineno) == ("/p/user.py", "f", line)
    at = list(code.co_positions())[tb.tb_lasti // 2]
    assert at == (line, line + more, col, end_col)


def run_script(script: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, str(script)], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.slow
def test_a_script_importing_a_sibling_module_runs_from_any_working_directory(
    tmp_path: Path, redis_url: str
) -> None:
    """Helpers, classes and exceptions of ``helpers.py`` next to the script reach worker
    processes started elsewhere, and a failure in a helper is raised as its own type."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "helpers.py").write_text(
        textwrap.dedent(
            """
            class Bad(Exception):
                pass

            class Counted:
                def __init__(self, n):
                    self.n = n

            def tokens(line):
                return line.split()

            def check(n):
                if n > 2:
                    raise Bad(f"too many: {n}")
                return Counted(n)
            """
        )
    )
    (project / "script.py").write_text(
        textwrap.dedent(
            f"""
            import shoal
            from helpers import Bad, Counted, check, tokens

            @shoal.task
            def count(line):
                return check(len(tokens(line)))

            with shoal.Session(redis_url={redis_url!r}, progress=False) as s:
                (ok,) = s.compute(count("a b"))
                assert isinstance(ok, Counted) and ok.n == 2, ok
                try:
                    s.compute(count("a b c"))
                except Bad as e:
                    print("caught", type(e).__name__, e.args)
            """
        )
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = run_script(project / "script.py", elsewhere)
    assert done.returncode == 0, done.stderr
    assert "caught TaskError(Bad) ('too many: 3',)" in done.stdout


@pytest.mark.slow
def test_a_module_the_worker_cannot_import_is_named(tmp_path: Path, redis_url: str) -> None:
    """An installed package missing where the workers run (here: a module the client treats as
    installed, which workers started elsewhere cannot import) fails its task with a
    ModuleNotFoundError naming the module, not with a PayloadError."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "vendored_only_here.py").write_text("class Thing:\n    pass\n")
    (tmp_path / "script.py").write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(lib)!r})
            import shoal, shoal.serialize as ser
            ser._INSTALLED += ({str(lib) + os.sep!r},)  # as if pip-installed, by reference
            import vendored_only_here

            @shoal.task
            def use(thing):
                return type(thing).__name__

            with shoal.Session(redis_url={redis_url!r}, progress=False) as s:
                try:
                    s.compute(use(vendored_only_here.Thing()))
                except ModuleNotFoundError as e:
                    print("caught", type(e).__name__, e.message)
            """
        )
    )
    done = run_script(tmp_path / "script.py", tmp_path)
    assert done.returncode == 0, done.stderr
    assert "caught TaskError(ModuleNotFoundError)" in done.stdout
    assert "needs the module 'vendored_only_here'" in done.stdout
    assert "installed where the workers run" in done.stdout
    assert "PayloadError" not in done.stdout + done.stderr
