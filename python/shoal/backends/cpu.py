"""CPU shares for local worker processes, as a serverless platform gives them.

On AWS Lambda a function's CPU grows with its memory: one vCPU per 1,769 MB
(:func:`lambda_cpu`). ``LocalProcesses`` gives each sized worker process that share of the
machine where the OS lets it, with a CFS bandwidth limit of its own:

- cgroup v2: a group under a writable ``cpu`` hierarchy, ``cpu.max = "<quota> <period>"``;
- cgroup v1: a group under ``/sys/fs/cgroup/cpu``, ``cpu.cfs_period_us`` and
  ``cpu.cfs_quota_us``.

The pool creates ``shoal-<pool>/p<n>`` for a process before starting it and the process
moves itself in as its first step (``--cgroup``), so no task runs outside its limit; the
group is removed when the process ends. Where neither hierarchy is writable (no root, a
container), :func:`probe` says why, the pool says it once, and workers record their size as
not enforced (``cpu`` None in their TASK_STARTED).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

#: Lambda's rule: one vCPU per this much memory.
MB_PER_VCPU = 1769
#: CFS period of every group (100 ms, the kernel's default).
PERIOD_US = 100_000
#: Where the hierarchies are looked for (tests point it elsewhere).
ROOT = Path("/sys/fs/cgroup")


def lambda_cpu(memory_mb: int, cores: int | None = None) -> float:
    """The CPU share Lambda gives ``memory_mb``, capped at the machine's cores."""
    cores = cores or os.cpu_count() or 1
    return round(min(float(cores), memory_mb / MB_PER_VCPU), 4)


@dataclass(frozen=True)
class Hierarchy:
    """A writable cpu hierarchy: where groups go, and which version it is."""

    base: Path
    version: int

    def limit(self, group: Path, cpu: float) -> None:
        quota = max(1000, math.ceil(cpu * PERIOD_US))
        if self.version == 2:
            (group / "cpu.max").write_text(f"{quota} {PERIOD_US}\n")
        else:
            (group / "cpu.cfs_period_us").write_text(f"{PERIOD_US}\n")
            (group / "cpu.cfs_quota_us").write_text(f"{quota}\n")


def probe(root: Path = ROOT) -> tuple[Hierarchy | None, str]:
    """A writable cpu hierarchy, or None and why there is none."""
    v2 = root / "cgroup.controllers"
    if v2.exists() and "cpu" in v2.read_text().split():
        if os.access(root, os.W_OK):
            return Hierarchy(root, 2), "cgroup v2"
        return None, f"cgroup v2 at {root} is not writable by this user"
    v1 = root / "cpu"
    if (v1 / "cpu.cfs_quota_us").exists():
        if os.access(v1, os.W_OK):
            return Hierarchy(v1, 1), "cgroup v1"
        return None, f"cgroup v1 cpu controller at {v1} is not writable by this user"
    return None, f"no cgroup cpu controller under {root}"


class CpuGroups:
    """One pool's groups: made per process, limited, removed when the process is gone."""

    def __init__(self, pool_id: str, hierarchy: Hierarchy) -> None:
        self.hierarchy = hierarchy
        self.parent = hierarchy.base / f"shoal-{pool_id}"
        self._n = 0
        self._closed = False

    def make(self, cpu: float) -> Path:
        """A new group limited to ``cpu`` (share of one core); the process joins it itself."""
        self.parent.mkdir(exist_ok=True)
        if self.hierarchy.version == 2:
            with contextlib.suppress(OSError):  # let the children have the controller
                (self.parent / "cgroup.subtree_control").write_text("+cpu\n")
        self._n += 1
        group = self.parent / f"p{self._n}"
        group.mkdir()
        self.hierarchy.limit(group, cpu)
        return group

    def remove(self, group: Path) -> None:
        """Removes the group of a process that has ended (and the parent, once the pool is
        closed and this was its last)."""
        _rmdir(group)
        if self._closed:
            _rmdir(self.parent, tries=1)  # others may still be in it: close() retries

    def close(self) -> None:
        """Removes the groups, whose processes have all ended, and the parent."""
        self._closed = True
        try:
            children = [c for c in self.parent.iterdir() if c.is_dir()]
        except FileNotFoundError:  # never made, or its last process took it along
            return
        for child in children:
            _rmdir(child)
        _rmdir(self.parent)


def _rmdir(path: Path, tries: int = 50) -> None:
    """``rmdir`` of a cgroup. The kernel releases an ended process's membership a moment
    after it is reaped, and refuses (EBUSY) until then: a few short retries."""
    for _ in range(tries):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)


def join(group: str) -> None:
    """Moves the calling process into ``group`` (a worker process's first step)."""
    (Path(group) / "cgroup.procs").write_text(f"{os.getpid()}\n")
