"""A task that raises SystemExit, KeyboardInterrupt or another BaseException fails like any task
(with its retries, its name and its traceback); its worker goes on (DESIGN §6)."""

from __future__ import annotations

import sys
from typing import Any

import pytest

import shoal


class Interrupt(BaseException):
    """A BaseException of the user's own, not an Exception."""


@shoal.task
def exits(code: int) -> int:
    sys.exit(code)


@shoal.task
def interrupted(x: int) -> int:
    raise KeyboardInterrupt(f"interrupted at {x}")


@shoal.task
def escapes(x: int) -> int:
    raise Interrupt(f"escaped at {x}")


@shoal.task
def ok(*xs: Any) -> int:
    return sum(xs)


def test_sys_exit_in_a_task_is_a_task_failure(scheduler: str) -> None:
    with pytest.raises(shoal.TaskError) as err:
        shoal.compute(ok(exits(3), ok(1)), scheduler=scheduler, timeout=60)
    e = err.value
    assert (e.task, e.exc_type, e.message) == ("exits", "SystemExit", "3")
    assert "sys.exit(code)" in e.traceback  # the user's frame, not shoal's


def test_a_base_exception_of_the_users_is_a_task_failure(scheduler: str) -> None:
    with pytest.raises(shoal.TaskError) as err:
        shoal.compute(escapes(7), scheduler=scheduler, timeout=60)
    assert (err.value.exc_type, err.value.message) == ("Interrupt", "escaped at 7")


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_keyboard_interrupt_in_a_task_is_a_task_failure_with_its_retries(scheduler: str) -> None:
    with pytest.raises(shoal.TaskError) as err:
        shoal.compute(interrupted.options(retries=2)(5), scheduler=scheduler, timeout=60)
    e = err.value
    assert (e.exc_type, e.message, e.attempts) == ("KeyboardInterrupt", "interrupted at 5", 3)


def test_keyboard_interrupt_in_sync_mode_is_the_users_own() -> None:
    # sync runs the task in the caller's thread: a KeyboardInterrupt there is a Ctrl-C.
    with pytest.raises(KeyboardInterrupt):
        shoal.compute(interrupted(1), scheduler="sync")


def test_the_worker_goes_on_after_a_task_exits(scheduler: str) -> None:
    with pytest.raises(shoal.TaskError):
        shoal.compute(exits(1), scheduler=scheduler, timeout=60)
    assert shoal.compute(ok(1, 2), ok(3), scheduler=scheduler, timeout=60) == (3, 3)


@shoal.task
def unencodable(x: int) -> Any:
    import threading

    return threading.Lock()  # cannot be pickled


@shoal.task
def garbled(x: int) -> int:
    raise ValueError("bad byte \udcff in a message")


def test_an_output_that_cannot_be_encoded_fails_its_task_by_name(scheduler: str) -> None:
    with pytest.raises(shoal.TaskError) as err:
        shoal.compute(unencodable(1), scheduler=scheduler, timeout=60)
    e = err.value
    assert e.task == "unencodable" and e.exc_type == "TypeError"
    assert "the output of task 'unencodable' (lock) cannot be encoded" in e.message
    assert "pickle" in e.message


def test_a_message_that_is_not_utf8_keeps_the_task_name(scheduler: str) -> None:
    with pytest.raises(shoal.TaskError) as err:
        shoal.compute(garbled(1), scheduler=scheduler, timeout=60)
    e = err.value
    assert (e.task, e.exc_type) == ("garbled", "ValueError")
    assert e.message == "bad byte \\udcff in a message"


@shoal.task
def raises_key_error(x: int) -> int:
    raise KeyError(f"missing {x}")


def test_no_error_carries_the_bridges_own_context(scheduler: str) -> None:
    """Runs execute on the session's loop, not inside an ``except`` of a sync-over-async
    bridge: nothing like 'no running event loop' is chained to a task's error."""
    import traceback

    with pytest.raises(shoal.TaskError) as err:
        shoal.compute(raises_key_error(1), scheduler=scheduler, timeout=60)
    shown = "".join(traceback.format_exception(err.value))
    assert "no running event loop" not in shown
    assert "During handling of the above exception" not in shown
    assert "missing 1" in shown
