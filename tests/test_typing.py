"""Types as a user's checker sees them (issue 13): a decorated task keeps its signature, takes a
node wherever it takes a value, returns ``Node[R]``, and ``compute`` gives ``R``. A typed script
passes ``mypy --strict`` run the way a user runs it (outside this repository's settings), with
every revealed type as expected, and the usual mistakes are each reported on their line."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent / "typing"

REVEALED = {
    "R1": "shoal.task.Node[int]",
    "R2": "int",
    "R3": "shoal.maps.MapNode[int]",
    "R4": "tuple[int, str]",
    "R5": "int",
    "R6": "shoal.task.Node[int]",
}


def mypy_strict(tmp_path: Path, script: str) -> tuple[int, list[str], dict[int, str]]:
    """Runs ``mypy --strict`` on a copy of ``script`` in an empty folder; returns the exit code,
    the output lines and the source line of each line number."""
    shutil.copy(HERE / script, tmp_path / script)
    (tmp_path / "mypy.ini").write_text("[mypy]\n")
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    source = dict(enumerate((tmp_path / script).read_text().splitlines(), start=1))
    return done.returncode, done.stdout.splitlines(), source


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_typed_script_that_chains_tasks_passes_mypy_strict(tmp_path: Path) -> None:
    code, lines, source = mypy_strict(tmp_path, "user_script.py")
    assert code == 0, "\n".join(lines)
    revealed = {}
    for line in lines:
        m = re.match(r'user_script\.py:(\d+): note: Revealed type is "(.+)"', line)
        if m:
            tag = source[int(m[1])].rpartition("# ")[2]
            revealed[tag] = m[2]
    assert revealed == REVEALED


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_mistakes_are_reported_each_on_its_line(tmp_path: Path) -> None:
    code, lines, source = mypy_strict(tmp_path, "user_mistakes.py")
    assert code == 1
    errors = {
        int(m[1]) for line in lines if (m := re.match(r"user_mistakes\.py:(\d+): error", line))
    }
    expected = {n for n, text in source.items() if "# E: " in text}
    assert len(expected) == 5 and errors == expected, "\n".join(lines)


def test_the_typed_script_runs_and_computes() -> None:
    done = subprocess.run(
        [sys.executable, str(HERE / "user_script.py")], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    # reveal_type prints at run time too: the runtime types behind the static ones.
    assert "Runtime type is 'int'" in done.stderr
    assert "Runtime type is 'tuple'" in done.stderr
