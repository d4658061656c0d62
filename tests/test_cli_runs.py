"""``shoal runs``, ``show``, ``history`` and ``what-if`` against a real server and history, after
runs made with ``shoal run`` or a session."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import shoal

ROOT = Path(__file__).resolve().parent.parent
SHOAL = [sys.executable, "-m", "shoal.cli"]

SCRIPT = """
import shoal

@shoal.task
def double(x):
    return 2 * x

@shoal.task
def total(xs):
    return sum(xs)

print("result", total([double(i) for i in range(10)]).compute())
"""


def shoal_cli(*args: str, env_url: str | None = None) -> subprocess.CompletedProcess[str]:
    import os

    env = {k: v for k, v in os.environ.items() if k != "SHOAL_REDIS_URL"}
    if env_url:
        env["SHOAL_REDIS_URL"] = env_url
    return subprocess.run(
        [*SHOAL, *args], capture_output=True, text=True, cwd=ROOT, timeout=120, env=env
    )


def test_run_then_list_and_show_the_run(redis_url: str, tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    out = shoal_cli("run", "--redis", redis_url, "--workers", "2", str(script))
    assert out.returncode == 0, out.stderr
    assert "result 90" in out.stdout
    assert "on worker processes in" in out.stderr

    listed = shoal_cli("runs", "--redis", redis_url, "--limit", "50")
    assert listed.returncode == 0, listed.stderr
    line = next(ln for ln in listed.stdout.splitlines() if "total" in ln)
    run_id = line.replace("│", " ").split()[-1]
    assert "completed" in line and " 11 " in line

    shown = shoal_cli("show", run_id, env_url=redis_url)  # the URL from SHOAL_REDIS_URL
    assert shown.returncode == 0, shown.stderr
    assert f"run {run_id}: completed, 11 tasks" in shown.stdout
    assert shown.stdout.count("double") == 10 and "total" in shown.stdout


def test_run_with_a_planner_records_it_and_show_names_it(redis_url: str, tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    out = shoal_cli("run", "--redis", redis_url, "--planner", "wukong", str(script))
    assert out.returncode == 0, out.stderr
    assert "result 90" in out.stdout
    listed = shoal_cli("runs", "--redis", redis_url, "--limit", "1")
    run_id = next(ln for ln in listed.stdout.splitlines() if "total" in ln)
    shown = shoal_cli("show", run_id.replace("│", " ").split()[-1], "--redis", redis_url)
    assert shown.returncode == 0, shown.stderr
    assert "planned by wukong" in shown.stdout and "predicted makespan" in shown.stdout
    priced = shoal_cli(
        "show", run_id.replace("│", " ").split()[-1], "--redis", redis_url, "--price", "lambda"
    )
    assert priced.returncode == 0, priced.stderr
    [line] = [ln for ln in priced.stdout.splitlines() if "GB-s" in ln and "$" in ln]
    gb_s = float(line.split(" GB-s")[0].split()[-1])
    cost = float(line.split("$")[1].split()[0])
    assert gb_s > 0 and cost == pytest.approx(gb_s * 0.0000166667, rel=1e-3, abs=1e-8)
    wrong = shoal_cli("show", "x", "--redis", redis_url, "--price", "cheap")
    assert wrong.returncode == 2 and "give a price per GB-second" in wrong.stderr
    bad = shoal_cli("run", "--planner", "fastest", str(script))
    assert bad.returncode == 2 and "'fastest' is not one of" in bad.stderr


def test_runs_without_a_server_is_a_clear_error() -> None:
    out = shoal_cli("runs")
    assert out.returncode == 2
    assert "pass --redis URL or set SHOAL_REDIS_URL" in out.stderr


def test_show_an_unknown_run(redis_url: str) -> None:
    out = shoal_cli("show", "nosuchrun", "--redis", redis_url)
    assert out.returncode == 1
    assert "no events for run 'nosuchrun'" in out.stderr


@pytest.mark.slow  # connection retries with backoff
def test_unreachable_server_is_a_clear_error() -> None:
    out = shoal_cli("runs", "--redis", "redis://127.0.0.1:1/0")
    assert out.returncode == 1
    assert "cannot reach redis://127.0.0.1:1/0" in out.stderr


@pytest.mark.slow  # connection retries with backoff
def test_a_script_against_an_unreachable_server_fails_clearly(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    out = shoal_cli("run", "--redis", "redis://:hunter2@127.0.0.1:1/0", str(script))
    assert out.returncode != 0
    assert "cannot reach the Redis server at redis://:***@127.0.0.1:1/0" in out.stderr
    assert "hunter2" not in out.stderr + out.stdout


MAP_SCRIPT = """
import shoal

@shoal.task
def numbers(n):
    return list(range(n))

@shoal.task
def square(x):
    return x * x

@shoal.task
def total(xs):
    return sum(xs)

print("result", total(shoal.map(square, numbers(6))).compute())
"""


def test_show_and_runs_count_map_elements_and_fit_80_columns(
    redis_url: str, tmp_path: Path
) -> None:
    """A map's elements count as tasks, each element row is its name (``square[3]``), every row
    says how its worker started (cold, warm, or chained: no start of its own), and no line of
    either table is wider than an 80-column terminal."""
    import os

    script = tmp_path / "mapjob.py"
    script.write_text(MAP_SCRIPT)
    out = shoal_cli("run", "--redis", redis_url, "--workers", "2", str(script))
    assert out.returncode == 0, out.stderr
    assert "result 55" in out.stdout
    narrow = {**os.environ, "COLUMNS": "80"}
    listed = subprocess.run(
        [*SHOAL, "runs", "--redis", redis_url, "--limit", "50"],
        capture_output=True, text=True, timeout=120, env=narrow,
    )  # fmt: skip
    line = next(ln for ln in listed.stdout.splitlines() if " total " in ln and " 9 " in ln)
    run_id = line.split()[-1]  # 3 tasks + 6 elements
    assert max(len(ln) for ln in listed.stdout.splitlines()) <= 80
    shown = subprocess.run(
        [*SHOAL, "show", run_id, "--redis", redis_url],
        capture_output=True, text=True, timeout=120, env=narrow,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert f"run {run_id}: completed, 9 tasks" in lines[0]
    assert max(len(ln) for ln in lines) <= 80, "\n".join(lines)
    rows = [ln.split() for ln in lines if ln.strip().startswith(("square[", "numbers", "total"))]
    assert sorted(r[0] for r in rows if r[0].startswith("square[")) == [
        f"square[{i}]" for i in range(6)
    ]
    assert len(rows) == 8  # numbers, six elements, total (the gathered map has no row)
    assert all(r[-1] in ("cold", "warm", "chained") for r in rows), rows
    assert rows[0][-1] == "cold"  # the first task of the run started its worker


def test_history_lists_the_functions_a_script_ran(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    store = tmp_path / "history"
    env_store = f"file://{store}"
    import os

    env = {k: v for k, v in os.environ.items() if k != "SHOAL_REDIS_URL"}
    env["SHOAL_METRICS_URL"] = env_store
    for _ in range(2):  # two scripts, two embedded servers: the history outlives both
        ran = subprocess.run(
            [*SHOAL, "run", "--scheduler", "sync", str(script)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
            env=env,
        )
        assert ran.returncode == 0, ran.stderr
    listed = subprocess.run(
        [*SHOAL, "history", "--metrics", env_store],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env=env,
    )
    assert listed.returncode == 0, listed.stderr
    assert f"history in {store}: 2 functions, 1 workflows" in listed.stdout
    rows = {ln.split()[0]: ln.split() for ln in listed.stdout.splitlines() if "__main__:" in ln}
    assert rows["__main__:double"][4] == "20" and rows["__main__:total"][4] == "2"


@shoal.task
def leaf(i: int) -> int:
    return i + 1


@shoal.task
def pair(x: int, y: int) -> int:
    return x + y


@shoal.task
def total_of(*xs: int) -> int:
    return sum(xs)


def test_show_prints_planned_vs_actual_and_what_if_replays_the_run(
    redis_url: str, tmp_path: Path
) -> None:
    store = f"file://{tmp_path / 'history'}"

    def tree() -> shoal.Node[int]:
        level = [leaf(i) for i in range(16)]
        while len(level) > 1:
            level = [pair(level[i], level[i + 1]) for i in range(0, len(level), 2)]
        return level[0]

    with shoal.Session(redis_url=redis_url, metrics_url=store, progress=False) as s:
        s.compute(tree())
        plan = s.simulate(tree())
        run = s.submit(tree(), plan=plan)
        assert run.result() == (sum(range(1, 17)),)
    shown = shoal_cli("show", run.id, "--redis", redis_url, "--metrics", store)
    assert shown.returncode == 0, shown.stderr
    assert f"predicted makespan {plan.makespan_s:.3f} s, actual" in shown.stdout
    assert "plan ms" in shown.stdout and max(map(len, shown.stdout.splitlines())) <= 80
    replayed = shoal_cli("what-if", run.id, "--metrics", store, "--workers", "1")
    assert replayed.returncode == 0, replayed.stderr
    lines = replayed.stdout.splitlines()
    assert lines[0].startswith(f"run {run.id}: 31 tasks")
    assert "replayed as it ran:" in lines[1] and "with plan recorded on 1 slots:" in lines[2]
    as_ran = float(lines[1].split(":")[1].split()[0])
    on_one = float(lines[2].split(":")[1].split()[0])
    assert as_ran > 0 and on_one > 0
    unknown = shoal_cli("what-if", "no-such-run", "--metrics", store)
    assert unknown.returncode != 0 and "has no replay in this history" in unknown.stderr


def test_show_takes_bytes_from_buffered_metrics_and_names_the_optimizations_that_acted(
    redis_url: str,
) -> None:
    from shoal.graph import freeze
    from shoal.optimizations import Cluster
    from shoal.planning import Plan, TaskPlan

    def fan() -> shoal.Node[int]:
        seed = leaf(7)
        return total_of(*[pair(seed, i) for i in range(4)])

    g = freeze([fan()]).graph
    [seed] = g.roots()
    plan = Plan({seed: TaskPlan(None, None, [Cluster()])})
    # ``exit``: bytes and optimizations travel in TASK_METRICS, apart from the completions.
    settings = shoal.Settings(metrics="exit")
    with shoal.Session(redis_url=redis_url, settings=settings, progress=False) as s:
        run = s.submit(fan(), plan=plan)
        assert run.result() == (sum(8 + i for i in range(4)),)
    shown = shoal_cli("show", run.id, "--redis", redis_url)
    assert shown.returncode == 0, shown.stderr
    lines = [ln.split() for ln in shown.stdout.splitlines()]
    rows = [ln for ln in lines if ln and ln[0] == "pair"]
    assert len(rows) == 4 and "optimized" in shown.stdout
    assert all(row[-1] == "cluster" for row in rows)
    [total] = [ln for ln in lines if ln and ln[0] == "total_of"]
    # Its output is requested, so stored: the buffered record has its size (the completion
    # itself says 0 under this strategy).
    assert total[-2] == "B" and int(total[-3]) > 0 and total[-1] == "chained", total
