"""Log scan: the files of a folder, found at run time, each parsed and summarized by its own task.

The graph is built before anyone knows how many files there are: ``list_logs`` runs first, then
``shoal.map`` gives each file a ``parse`` task and each parsed file a ``summarize`` task (an
element-wise chain: a file is summarized as soon as it is parsed), and ``merge`` receives the
list of summaries.

Run it:  shoal run examples/log_scan.py [--small]
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
import time
from typing import Any

import shoal

SEED = 7
LEVELS = ["INFO", "WARN", "ERROR"]
LEVEL_WEIGHTS = [90, 8, 2]


def write_logs(folder: str, n_files: int, n_lines: int) -> None:
    """File i holds n_lines lines ``<LEVEL> <latency ms>`` drawn by a generator seeded by i."""
    for i in range(n_files):
        rng = random.Random(SEED * 1000 + i)
        lines = (
            f"{rng.choices(LEVELS, weights=LEVEL_WEIGHTS)[0]} {rng.randint(1, 500)}"
            for _ in range(n_lines)
        )
        with open(os.path.join(folder, f"app-{i:03d}.log"), "w") as f:
            f.write("\n".join(lines) + "\n")


@shoal.task
def list_logs(folder: str) -> list[str]:
    return sorted(
        os.path.join(folder, name) for name in os.listdir(folder) if name.endswith(".log")
    )


@shoal.task
def parse(path: str) -> list[tuple[str, int]]:
    with open(path) as f:
        return [(level, int(ms)) for level, ms in (line.split() for line in f if line.strip())]


@shoal.task
def summarize(records: list[tuple[str, int]], slow_ms: int) -> dict[str, int]:
    return {
        "lines": len(records),
        "errors": sum(level == "ERROR" for level, _ in records),
        "slow": sum(ms > slow_ms for _, ms in records),
    }


@shoal.task
def merge(summaries: Any) -> dict[str, int]:
    """``summaries``: the list of per-file summaries (``Any`` because the caller passes the
    lazy map node that computes it, which a task's parameter types cannot say yet)."""
    total = {"files": len(summaries), "lines": 0, "errors": 0, "slow": 0}
    for s in summaries:
        for key, n in s.items():
            total[key] += n
    total["worst_file"] = max(range(len(summaries)), key=lambda i: summaries[i]["errors"])
    return total


def log_scan(folder: str, slow_ms: int) -> shoal.Node[Any]:
    summaries = shoal.map(summarize, shoal.map(parse, list_logs(folder)), slow_ms)
    return merge(summaries)


def main() -> None:
    n_files, n_lines = (9, 200) if "--small" in sys.argv else (64, 20_000)
    with tempfile.TemporaryDirectory(prefix="shoal-logs-") as folder:
        write_logs(folder, n_files, n_lines)
        graph = log_scan(folder, slow_ms=450)
        start = time.perf_counter()
        result = graph.compute()
        elapsed = time.perf_counter() - start
    print(f"log scan of {n_files} files found at run time: {json.dumps(result, sort_keys=True)}")
    print(f"computed in {elapsed:.2f} s")


if __name__ == "__main__":
    main()
