"""The command line and the examples, run as a user would.

Every example runs on every scheduler as a subprocess (``python -m shoal.cli run ...``) from the
repository root; its result line is checked against a reference computed here, without importing
anything from the examples."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_no_leaks

ROOT = Path(__file__).resolve().parent.parent
SHOAL = [sys.executable, "-m", "shoal.cli"]
WHERE = {"sync": "sync", "threads": "threads", "processes": "worker processes"}


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SHOAL, *args], capture_output=True, text=True, cwd=ROOT, timeout=120, env=env
    )


def result_line(stdout: str, phrase: str) -> str:
    lines = [line for line in stdout.splitlines() if line.startswith(phrase)]
    assert len(lines) == 1, f"expected one line starting with {phrase!r} in:\n{stdout}"
    return lines[0][len(phrase) :]


# References for the --small sizes, computed independently of the examples.


def check_tree_reduction(stdout: str) -> None:
    expected = sum((i * 7919) % 1000 for i in range(64))
    assert result_line(stdout, "tree reduction of 64 leaves (127 tasks): ") == str(expected)


def check_fan_out(stdout: str) -> None:
    # work(seed, i) runs 1,000 steps of x -> a*x + c (mod 2**64); here in closed form:
    # x_n = a**n * x + c * (a**n - 1) / (a - 1), the division done exactly before the modulo.
    a, c, m, steps = 6364136223846793005, 1442695040888963407, 1 << 64, 1000
    a_n = pow(a, steps, m)
    geometric = (pow(a, steps, (a - 1) * m) - 1) // (a - 1)
    total = 0
    for i in range(50):
        x = (20240611 ^ (i * 0x9E3779B97F4A7C15)) % m
        total += (i + 1) * (((a_n * x + c * geometric) % m) % 1_000_003)
    assert result_line(stdout, "fan-out of 50 tasks: ") == str(total)
    assert re.search(r"^computed in \d+\.\d\d s$", stdout, re.M), stdout


def check_word_count(stdout: str) -> None:
    words = (
        "the of and to a in is it you that he was for on are with as his they be "
        "at one have this from or had by hot word but what some we can out other"
    )
    vocab = words.split()
    weights = [1 / (rank + 1) for rank in range(len(vocab))]
    counts: dict[str, int] = {}
    for i in range(10):
        for word in random.Random(42 * 1_000_003 + i).choices(vocab, weights=weights, k=500):
            counts[word] = counts.get(word, 0) + 1
    assert sum(counts.values()) == 5000
    expected = sorted(([w, n] for w, n in counts.items()), key=lambda wn: (-wn[1], wn[0]))[:5]
    printed = result_line(stdout, "word count of 5000 words in 10 chunks: top 5 = ")
    assert json.loads(printed) == expected
    assert re.search(r"^computed in \d+\.\d\d s$", stdout, re.M), stdout


def check_gemm(stdout: str) -> None:
    n, size = 3, 16

    def matrix(which: int) -> np.ndarray:
        out = np.empty((n * size, n * size))
        for i in range(n):
            for j in range(n):
                rng = np.random.default_rng((which, i, j))
                out[i * size : (i + 1) * size, j * size : (j + 1) * size] = rng.standard_normal(
                    (size, size)
                )
        return out

    checksum = float((matrix(0) @ matrix(1)).sum())
    printed = result_line(stdout, "gemm of (3 x 3) blocks of 16x16: ")
    found = re.fullmatch(r"checksum (\S+), max abs error (\S+)", printed)
    assert found, printed
    assert float(found[1]) == pytest.approx(checksum, abs=1e-5)
    assert float(found[2]) < 1e-9
    assert re.search(r"^computed in \d+\.\d\d s$", stdout, re.M), stdout


CHECKS = {
    "tree_reduction": check_tree_reduction,
    "fan_out": check_fan_out,
    "word_count": check_word_count,
    "gemm": check_gemm,
}
CASES = [(name, s) for name in CHECKS for s in ("sync", "processes")] + [
    ("tree_reduction", "threads")
]


@pytest.mark.parametrize(("example", "scheduler"), CASES)
def test_example(example: str, scheduler: str, request: pytest.FixtureRequest) -> None:
    script = f"examples/{example}.py"
    options = ["--scheduler", scheduler]
    redis_url = None
    if scheduler == "processes":
        redis_url = request.getfixturevalue("redis_url")
        options += ["--redis", redis_url, "--workers", "2"]
    out = run("run", *options, script, "--small")
    assert out.returncode == 0, out.stderr
    CHECKS[example](out.stdout)
    assert re.search(rf"^ran {script} on {WHERE[scheduler]} in \d+\.\d\d s$", out.stderr, re.M), (
        out.stderr
    )
    if redis_url is not None:
        assert_no_leaks(redis_url)


def test_default_run_starts_its_own_server() -> None:
    env = {k: v for k, v in os.environ.items() if k != "SHOAL_REDIS_URL"}
    out = run("run", "examples/tree_reduction.py", "--small", env=env)
    assert out.returncode == 0, out.stderr
    check_tree_reduction(out.stdout)
    assert re.search(
        r"^ran examples/tree_reduction\.py on worker processes in \d+\.\d\d s$", out.stderr, re.M
    ), out.stderr


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
