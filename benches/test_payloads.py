"""Encoding large task outputs: zstd only where it pays (issue 14, item 6).

Each value is encoded and decoded as a task output is (``dumps_value`` / ``loads_value``) by
shoal's policy (a large body is compressed only if three sampled slices of it shrink by a
tenth) and by the previous one (compress every body over 1 KiB, keep it if smaller), taking
turns, median of 7 rounds. Printed, never asserted.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from shoal import serialize
from shoal.serialize import dumps_value, loads_value, value_place

W = value_place("bench", 1)
VALUES: dict[str, Callable[[], Any]] = {
    "random floats, 8 MB": lambda: np.random.default_rng(1).random(1_000_000),
    "int range, 8 MB": lambda: np.arange(1_000_000),
    "repeated text, 8 MB": lambda: "the same words again " * 400_000,
}
ROUNDS = 7


def _round_trip(value: Any) -> tuple[float, int]:
    t = time.perf_counter()
    blob = dumps_value(value, W)
    loads_value(blob, W)
    return time.perf_counter() - t, len(blob)


@pytest.mark.parametrize("name", list(VALUES))
def test_encoding_large_values(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    value = VALUES[name]()
    sampled: list[float] = []
    always: list[float] = []
    sizes = {}
    for _ in range(ROUNDS):
        dt, sizes["sampled"] = _round_trip(value)
        sampled.append(dt)
        with monkeypatch.context() as m:  # the previous policy: always try
            m.setattr(serialize, "_worth_compressing", lambda body: True)
            dt, sizes["always"] = _round_trip(value)
        always.append(dt)
    a, b = statistics.median(sampled), statistics.median(always)
    print(
        f"\n{name}: sampled {a * 1000:.1f} ms ({sizes['sampled'] / 1e6:.2f} MB), "
        f"always-compress {b * 1000:.1f} ms ({sizes['always'] / 1e6:.2f} MB): {a / b:.2f}x"
    )
