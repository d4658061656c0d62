"""Worker sizes that mean something on one machine: CPU shares by cgroup, as on Lambda."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest

import shoal
from shoal.backends import LocalProcesses
from shoal.backends import cpu as cpu_shares
from shoal.backends.cpu import MB_PER_VCPU, PERIOD_US, lambda_cpu, probe
from shoal.events import TaskStarted
from shoal.planning import Plan, Size, TaskPlan


@shoal.task
def own_quota() -> tuple[str, int | None]:
    """This process's cpu cgroup and its CFS quota (None: no v1 group of its own)."""
    line = next(ln for ln in Path("/proc/self/cgroup").read_text().splitlines() if ":cpu:" in ln)
    group = line.split(":", 2)[2]
    quota = Path("/sys/fs/cgroup/cpu") / group.lstrip("/") / "cpu.cfs_quota_us"
    return group, int(quota.read_text()) if group != "/" and quota.exists() else None


def test_lambdas_rule_and_its_cap_at_the_machines_cores() -> None:
    assert lambda_cpu(MB_PER_VCPU, cores=4) == 1.0
    assert lambda_cpu(442, cores=4) == pytest.approx(0.2499, abs=1e-4)
    assert lambda_cpu(10_240, cores=2) == 2.0


def test_probe_finds_a_writable_hierarchy_or_says_why_not(tmp_path: Path) -> None:
    assert probe(tmp_path) == (None, f"no cgroup cpu controller under {tmp_path}")
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    found, how = probe(tmp_path)
    assert found is not None and found.version == 1 and how == "cgroup v1"
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory\n")
    found, how = probe(tmp_path)
    assert found is not None and found.version == 2 and how == "cgroup v2"


def sized(memory_mb: int) -> Plan:
    return Plan({0: TaskPlan(size=Size(memory_mb=memory_mb))})


def started_cpu(run: shoal.Run) -> float | None:
    [first] = [e for e in run.events() if isinstance(e, TaskStarted)]
    return first.cpu


def test_a_sized_worker_runs_in_a_group_limited_to_its_share(redis_url: str) -> None:
    hierarchy, why = probe()
    if hierarchy is None or hierarchy.version != 1:
        pytest.skip(f"needs a writable cgroup v1 cpu controller: {why}")
    with shoal.Session(
        redis_url=redis_url, backend=LocalProcesses(max_workers=1), progress=False
    ) as s:
        run = s.submit(own_quota(), plan=sized(442))
        (group, quota) = run.result(timeout=60)[0]
        # 442 MB: a quarter of a vCPU, about 25 ms of every 100 ms period.
        assert group.startswith("/shoal-") and quota == math.ceil(lambda_cpu(442) * PERIOD_US)
        assert 24_000 < quota < 26_000
        assert started_cpu(run) == lambda_cpu(442)
        plain = s.submit(own_quota(), plan=Plan())  # unsized: no limit, no group
        assert plain.result(timeout=60)[0] == ("/", None) and started_cpu(plain) is None
    assert not list(hierarchy.base.glob("shoal-*")), "groups left behind"


def test_where_shares_cannot_be_enforced_it_says_so_once_and_records_none(
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(cpu_shares, "ROOT", tmp_path)  # no controller here
    monkeypatch.setattr(cpu_shares.probe, "__defaults__", (tmp_path,))
    with (
        caplog.at_level(logging.WARNING, logger="shoal.pool"),
        shoal.Session(
            redis_url=redis_url, backend=LocalProcesses(max_workers=1), progress=False
        ) as s,
    ):
        run = s.submit(own_quota(), plan=sized(442))
        assert run.result(timeout=60)[0] == ("/", None)
        assert started_cpu(run) is None
    said = [r.message for r in caplog.records if "not enforced" in r.message]
    assert len(said) <= 1 and all("no cgroup cpu controller" in m for m in said)
