"""A user's typed script, checked by ``mypy --strict`` in tests/test_typing.py (as a user would
run it, outside this repository's mypy settings). Every ``reveal_type`` is asserted there."""

from __future__ import annotations

from typing import reveal_type

import shoal


@shoal.task
def add(x: int, y: int) -> int:
    return x + y


@shoal.task(retries=2)
def total(xs: list[int], *, scale: int = 1) -> int:
    return scale * sum(xs)


@shoal.task
def label(n: int) -> str:
    return f"n={n}"


def main() -> None:
    a = add(add(1, 2), 3)  # a node is accepted where its value is
    s = total([a, add(a, 1), 5], scale=2)
    squares = shoal.map(add, [1, 2, 3], 10)
    everything = total(squares)  # a map's node is its list of values
    v = a.compute(scheduler="sync")
    pair = shoal.compute(s, label(v), scheduler="sync")
    reveal_type(a)  # R1
    reveal_type(v)  # R2
    reveal_type(squares)  # R3
    reveal_type(pair)  # R4
    reveal_type(everything.compute())  # R5
    reveal_type(add.options(retries=1)(1, 2))  # R6


if __name__ == "__main__":
    main()
