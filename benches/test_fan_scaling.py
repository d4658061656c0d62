"""A fan-out's cost must grow with its width, not faster (issue 14): 1 -> N -> 1 for N = 1,000
and 10,000 on two worker processes (examples/fan_out.py's tasks: an LCG of 1,000 steps per
branch), the median of 5 runs each after a warm-up, and the peak RSS of each worker process
(VmHWM: the root's worker cuts and sends the shares, the last one gathers 10,000 inputs).

Printed, never asserted; a wrong result fails.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import shoal
from shoal.backends import LocalProcesses

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
import fan_out

WIDTHS = [1000, 10_000]


def peak_rss_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) // 1024
    return 0


def test_fan_out_scaling() -> None:
    backend = LocalProcesses(max_workers=2)
    medians: dict[int, float] = {}
    with shoal.Session(backend=backend, progress=False) as s:
        assert s.compute(fan_out.fan_out(100)) == (fan_out.reference(100),)
        for width in WIDTHS:
            times = []
            for _ in range(5):
                graph = fan_out.fan_out(width)
                began = time.perf_counter()
                got = s.compute(graph)
                times.append(time.perf_counter() - began)
                assert got == (fan_out.reference(width),)
            medians[width] = statistics.median(times)
        assert backend._pool is not None
        rss = [peak_rss_mb(p.popen.pid) for p in backend._pool._procs if p.alive]
    print()
    for width, t in medians.items():
        print(f"fan 1 -> {width:,} -> 1: {t * 1000:.0f} ms")
    print(f"10,000 / 1,000: {medians[10_000] / medians[1000]:.1f}x; worker peak RSS {rss} MB")
