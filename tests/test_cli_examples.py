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
from typing import Any

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
    pairs: list[list[Any]] = [[w, n] for w, n in counts.items()]
    expected = sorted(pairs, key=lambda wn: (-wn[1], wn[0]))[:5]
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


def check_image_pipeline(stdout: str) -> None:
    # A 256x256 float32 image made of 4x4 tiles of 64x64 (tile (i, j) from the generator seeded
    # by (7, i, j)), a 3x3 mean with the border pixels repeated, scaled to [0, 1] by the image's
    # range, then raised to the power 0.8.
    n, size = 4, 64
    image = np.empty((n * size, n * size), dtype=np.float32)
    for i in range(n):
        for j in range(n):
            y = np.arange(i * size, (i + 1) * size, dtype=np.float32)[:, None]
            x = np.arange(j * size, (j + 1) * size, dtype=np.float32)[None, :]
            noise = np.random.default_rng((7, i, j)).normal(0.0, 10.0, (size, size))
            tile = 100.0 + 40.0 * (np.sin(y / 37.0) * np.cos(x / 23.0)) + noise
            image[i * size : (i + 1) * size, j * size : (j + 1) * size] = tile
    padded = np.pad(image, 1, mode="edge")
    blurred = np.zeros_like(image)
    for dy in range(3):
        for dx in range(3):
            blurred += padded[dy : dy + n * size, dx : dx + n * size]
    blurred /= np.float32(9.0)
    lo, hi = np.float32(image.min()), np.float32(image.max())
    toned = np.clip((blurred - lo) / (hi - lo), 0.0, 1.0) ** np.float32(0.8)
    histogram, _ = np.histogram(toned, bins=8, range=(0.0, 1.0))
    printed = result_line(stdout, "image pipeline of 256x256 in 16 tiles: ")
    found = re.fullmatch(r"mean (\S+), std (\S+), histogram (\[.*\])", printed)
    assert found, printed
    assert float(found[1]) == pytest.approx(float(toned.mean(dtype=np.float64)), abs=1e-6)
    assert float(found[2]) == pytest.approx(float(toned.std(dtype=np.float64)), abs=1e-6)
    counts = json.loads(found[3])
    assert sum(counts) == n * size * n * size
    assert np.abs(np.array(counts) - histogram).sum() <= 4  # rounding may move a pixel or two
    assert re.search(r"^computed in \d+\.\d\d s$", stdout, re.M), stdout


def check_montage(stdout: str) -> None:
    # 3x3 inputs of 32x32 pixels. Input k sees the sky from (y, x) = (24 * row + jy, 24 * col
    # + jx), jitter (jy, jx) uniform in [0, 3) from the generator seeded by (11, k), plus a
    # background uniform in [-5, 5) and noise N(0, 0.01) from (11, k, 1). The sky: gradient
    # 0.002 y - 0.001 x plus 24 Gaussians drawn from seed 11 over [0, 3 * 24 + 32).
    grid, size, step = 3, 32, 24
    extent = grid * step + size
    rng = np.random.default_rng(11)
    stars = list(
        zip(
            rng.uniform(0, extent, 24),
            rng.uniform(0, extent, 24),
            rng.uniform(5.0, 50.0, 24),
            rng.uniform(1.5, 4.0, 24),
            strict=True,
        )
    )
    projected = []
    for k in range(grid * grid):
        jy, jx = np.random.default_rng((11, k)).uniform(0.0, 3.0, 2)
        oy, ox = (k // grid) * step + jy, (k % grid) * step + jx
        y = oy + np.arange(size)[:, None]
        x = ox + np.arange(size)[None, :]
        sky = 0.002 * y - 0.001 * x
        for cy, cx, flux, width in stars:
            sky = sky + flux * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * width**2))
        noise_rng = np.random.default_rng((11, k, 1))
        background = noise_rng.uniform(-5.0, 5.0)
        a = sky + background + noise_rng.normal(0.0, 0.01, (size, size))
        # Bilinear resampling onto the integer grid from (ceil(oy), ceil(ox)).
        y0, x0 = int(np.ceil(oy)), int(np.ceil(ox))
        fy, fx = y0 - oy, x0 - ox
        resampled = (
            (1 - fy) * (1 - fx) * a[:-1, :-1]
            + (1 - fy) * fx * a[:-1, 1:]
            + fy * (1 - fx) * a[1:, :-1]
            + fy * fx * a[1:, 1:]
        )
        projected.append((y0, x0, resampled))
    pairs = [(k, k + 1) for k in range(9) if k % grid < grid - 1]
    pairs += [(k, k + grid) for k in range(9) if k // grid < grid - 1]
    design = np.zeros((len(pairs) + 1, 9))
    offsets = np.zeros(len(pairs) + 1)
    for row, (i, j) in enumerate(pairs):
        (yi, xi, pi), (yj, xj, pj) = projected[i], projected[j]
        ya, yb = max(yi, yj), min(yi, yj) + size - 1
        xa, xb = max(xi, xj), min(xi, xj) + size - 1
        diff = pi[ya - yi : yb - yi, xa - xi : xb - xi] - pj[ya - yj : yb - yj, xa - xj : xb - xj]
        design[row, i], design[row, j], offsets[row] = 1.0, -1.0, diff.mean()
    design[-1] = 1.0  # the levels sum to zero
    levels = np.linalg.lstsq(design, offsets, rcond=None)[0]
    top, left = min(p[0] for p in projected), min(p[1] for p in projected)
    bottom = max(p[0] for p in projected) + size - 1
    right = max(p[1] for p in projected) + size - 1
    total = np.zeros((bottom - top, right - left))
    count = np.zeros_like(total)
    for k, (y0, x0, pixels) in enumerate(projected):
        total[y0 - top : y0 - top + size - 1, x0 - left : x0 - left + size - 1] += (
            pixels - levels[k]
        )
        count[y0 - top : y0 - top + size - 1, x0 - left : x0 - left + size - 1] += 1
    covered = count > 0
    h, w = total.shape
    printed = result_line(stdout, f"montage of 9 images of 32x32 into {h}x{w}: ")
    found = re.fullmatch(r"checksum (\S+), covered (\d+)", printed)
    assert found, printed
    assert float(found[1]) == pytest.approx(
        float((total[covered] / count[covered]).sum()), abs=1e-5
    )
    assert int(found[2]) == int(covered.sum())
    assert re.search(r"^computed in \d+\.\d\d s$", stdout, re.M), stdout


def check_chains(stdout: str) -> None:
    # Chains of 1, 2, 4 and 8 links; chain c starts from 100 * c and each link adds 1.
    lengths = [1, 2, 4, 8]
    printed = result_line(stdout, f"chains of lengths {lengths} ({sum(lengths) + 1} tasks): ends ")
    assert json.loads(printed) == [100 * c + n for c, n in enumerate(lengths)]
    assert re.search(r"^computed in \d+\.\d\d s$", stdout, re.M), stdout


def check_log_scan(stdout: str) -> None:
    # 9 files of 200 lines; line k of file i: level and latency from Random(7 * 1000 + i).
    totals = {"files": 9, "lines": 0, "errors": 0, "slow": 0}
    errors = []
    for i in range(9):
        rng = random.Random(7 * 1000 + i)
        lines = [
            (rng.choices(["INFO", "WARN", "ERROR"], weights=[90, 8, 2])[0], rng.randint(1, 500))
            for _ in range(200)
        ]
        errors.append(sum(level == "ERROR" for level, _ in lines))
        totals["lines"] += len(lines)
        totals["slow"] += sum(ms > 450 for _, ms in lines)
    totals["errors"] = sum(errors)
    totals["worst_file"] = errors.index(max(errors))
    printed = result_line(stdout, "log scan of 9 files found at run time: ")
    assert json.loads(printed) == totals
    assert re.search(r"^computed in \d+\.\d\d s$", stdout, re.M), stdout


def check_critical_path(stdout: str) -> None:
    mask = (1 << 64) - 1

    def burn(x: int, rounds: int) -> int:
        a, c = 6364136223846793005, 1442695040888963407
        return (
            pow(a, rounds, 1 << 64) * x + c * ((pow(a, rounds, (a - 1) << 64) - 1) // (a - 1))
        ) & mask

    seed = burn(1, 1000)
    node = seed
    for _ in range(4):
        node = burn(node, 50_000)
    expected = (node + sum(burn(seed, 25_000 + i) for i in range(2))) & mask
    printed = result_line(stdout, "critical path of 4 steps beside 2 branches: ")
    assert printed == str(expected)


CHECKS = {
    "tree_reduction": check_tree_reduction,
    "fan_out": check_fan_out,
    "word_count": check_word_count,
    "gemm": check_gemm,
    "image_pipeline": check_image_pipeline,
    "montage": check_montage,
    "chains": check_chains,
    "log_scan": check_log_scan,
    "critical_path": check_critical_path,
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


def test_run_a_script_that_fails_shows_the_task_error(tmp_path: Path) -> None:
    script = tmp_path / "bad.py"
    script.write_text(
        "import shoal\n@shoal.task\ndef div(x):\n    return 1 / x\ndiv(0).compute()\n"
    )
    out = run("run", str(script))
    assert out.returncode != 0
    assert "task 'div' failed: ZeroDivisionError" in out.stderr


def test_missing_script_is_a_clear_error() -> None:
    out = run("run", "no/such/file.py")
    assert out.returncode == 2
    assert "does not exist" in out.stderr


def test_help_and_version() -> None:
    assert "run" in run("--help").stdout
    assert "shoal, version" in run("--version").stdout
