"""Mistakes a type checker catches in a typed script (tests/test_typing.py asserts each error's
line by the comment that ends it)."""

from __future__ import annotations

import shoal


@shoal.task
def add(x: int, y: int) -> int:
    return x + y


def main() -> None:
    add(1)  # E: missing
    add(1, 2, 3)  # E: too-many
    add(x=1, z=2)  # E: unexpected-keyword
    text: str = add(1, 2).compute()  # E: wrong-value
    shoal.compute(3)  # E: not-a-node
    print(text)
