"""The command line and the examples, run as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHOAL = [sys.executable, "-m", "shoal.cli"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SHOAL, *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_tree_reduction_example(scheduler):
    out = run("run", "--scheduler", scheduler, "examples/tree_reduction.py", "--small")
    assert out.returncode == 0, out.stderr
    expected = sum((i * 7919) % 1000 for i in range(64))
    assert f"tree reduction of 64 leaves (127 tasks): {expected}" in out.stdout
    assert f"on scheduler {scheduler}" in out.stderr


def test_run_a_script_that_fails_shows_the_task_error(tmp_path):
    script = tmp_path / "bad.py"
    script.write_text(
        "import shoal\n@shoal.task\ndef div(x):\n    return 1 / x\ndiv(0).compute()\n"
    )
    out = run("run", str(script))
    assert out.returncode != 0
    assert "task 'div' failed: ZeroDivisionError" in out.stderr


def test_missing_script_is_a_clear_error():
    out = run("run", "no/such/file.py")
    assert out.returncode == 2
    assert "does not exist" in out.stderr


def test_help_and_version():
    assert "run" in run("--help").stdout
    assert "shoal, version" in run("--version").stdout
