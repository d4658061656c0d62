"""Million-task graphs (issue 14, item 7): a 1 M-task tree frozen, planned and submitted, and a
100 k-task run to its end.

Each case runs in a process of its own (``python -m benches.test_million CASE``), so the peak
RSS it reports is that of one client doing one thing:

- ``submit``: build a pairwise tree of 524,288 leaves (1,048,575 tasks), then ``Session.submit``
  it (freeze in Rust, the plan, the cuts of the first workers' subDAGs, storing the run, the
  first invocations) and cancel the run. Printed: build time, submit time, peak RSS.
- ``run``: a tree of 65,536 leaves (131,071 tasks) to its result on two worker processes.
  Printed: the makespan, the event stream's length and memory on the server (MEMORY USAGE)
  per task, and the client's peak RSS: the stream costs a bounded number of entries per task,
  and the client reads it in batches without keeping it.

Times and sizes are printed, never asserted; a wrong result fails.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _case(case: str) -> dict[str, float]:
    import redis

    import shoal
    from shoal.backends import LocalProcesses
    from shoal.storage import keys

    from .tree_bench import tree

    leaves = 2**19 if case == "submit" else 2**16
    out: dict[str, float] = {"tasks": 2 * leaves - 1}
    with shoal.Session(backend=LocalProcesses(max_workers=2), progress=False) as s:
        began = time.perf_counter()
        root = tree(leaves)
        out["build_s"] = time.perf_counter() - began
        began = time.perf_counter()
        run = s.submit(root)
        out["submit_s"] = time.perf_counter() - began
        if case == "submit":
            run.cancel()
        else:
            assert run.result(timeout=900) == (sum(range(leaves)),)
            out["run_s"] = time.perf_counter() - began
            r = redis.Redis.from_url(s.storage.url)  # type: ignore[attr-defined]
            stream = keys.events(run.id)
            out["events"] = r.xlen(stream)
            out["stream_bytes"] = r.memory_usage(stream) or 0
            r.close()
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("case", ["submit", "run"])
def test_million_task_trees(case: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benches.test_million", case],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1100,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    tasks = int(got["tasks"])
    print()
    if case == "submit":
        print(
            f"tree of {tasks:,} tasks: built in {got['build_s']:.1f} s, submitted in "
            f"{got['submit_s']:.1f} s (freeze, plan, cuts, store, first invocations); "
            f"client peak RSS {got['peak_rss_mb']:.0f} MB"
        )
    else:
        print(
            f"tree of {tasks:,} tasks: result in {got['run_s']:.1f} s on 2 slots; event stream "
            f"{got['events'] / tasks:.2f} entries and {got['stream_bytes'] / tasks:.0f} bytes per "
            f"task on the server; client peak RSS {got['peak_rss_mb']:.0f} MB"
        )


if __name__ == "__main__":
    print(json.dumps(_case(sys.argv[1])))
