"""``scheduler="threads"`` many times in a row (issue 13): on Python 3.12 and 3.13 the in-process
pool once spun forever at full CPU in 4-8 of every 10 runs (``InProcess.drain`` gathered finished
tasks, which no longer yields to the loop there). CI runs this on 3.11, 3.12 and 3.13."""

from __future__ import annotations

import sys

import pytest

import shoal
from reference import evaluate


@shoal.task
def leaf(i: int) -> int:
    return i * i


@shoal.task
def add(a: int, b: int) -> int:
    return a + b


def tree(seed: int, width: int = 16) -> shoal.Node[int]:
    level = [leaf(seed * width + i) for i in range(width)]
    while len(level) > 1:
        level = [add(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


@pytest.mark.timeout(120)  # a hang is a failure with a traceback, not a stuck CI run
def test_fifty_threads_runs_in_a_row_all_finish_right() -> None:
    for seed in range(50):
        node = tree(seed)
        got = shoal.compute(node, scheduler="threads", timeout=30)
        assert got == evaluate(node), f"run {seed} on Python {sys.version.split()[0]}"
