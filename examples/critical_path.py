"""Critical path: one long chain of CPU-bound steps, and short CPU-bound side branches beside
it, joined at the end. The chain sets the makespan; the side branches have slack, so their
workers can be smaller (a workload for ``NonUniform``: smaller sizes off the critical path,
the same makespan, fewer GB-seconds).

Each step runs ``n`` rounds of a 64-bit linear congruential generator on its input.

Run it:  shoal run examples/critical_path.py [--small]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import shoal

MASK = (1 << 64) - 1
#: Steps of the chain, side branches, and rounds per step of each (about 0.1 us a round).
CHAIN, SIDES, CHAIN_ROUNDS, SIDE_ROUNDS = 10, 4, 500_000, 250_000


@shoal.task
def burn(x: int, rounds: int) -> int:
    """``rounds`` steps of the generator from ``x``: pure CPU, one thread."""
    for _ in range(rounds):
        x = (x * 6364136223846793005 + 1442695040888963407) & MASK
    return x


@shoal.task
def join(end: int, sides: list[int]) -> int:
    return (end + sum(sides)) & MASK


def critical_path(
    chain: int = CHAIN,
    sides: int = SIDES,
    chain_rounds: int = CHAIN_ROUNDS,
    side_rounds: int = SIDE_ROUNDS,
    make: Callable[[Callable[..., Any]], Any] = shoal.task,
) -> Any:
    """The graph: a seed, ``chain`` steps after it, ``sides`` one-step branches from the
    seed (branch i runs ``side_rounds + i`` rounds), and a join."""
    burn_, join_ = make(burn.func), make(join.func)
    seed = burn_(1, 1000)
    node = seed
    for _ in range(chain):
        node = burn_(node, chain_rounds)
    return join_(node, [burn_(seed, side_rounds + i) for i in range(sides)])


def reference(
    chain: int = CHAIN, sides: int = SIDES, chain_rounds: int = CHAIN_ROUNDS,
    side_rounds: int = SIDE_ROUNDS,
) -> int:  # fmt: skip
    seed = burn.func(1, 1000)
    node = seed
    for _ in range(chain):
        node = burn.func(node, chain_rounds)
    return join.func(node, [burn.func(seed, side_rounds + i) for i in range(sides)])


def main() -> None:
    small = "--small" in sys.argv
    args = (4, 2, 50_000, 25_000) if small else (CHAIN, SIDES, CHAIN_ROUNDS, SIDE_ROUNDS)
    start = time.perf_counter()
    value = critical_path(*args).compute()
    elapsed = time.perf_counter() - start
    assert value == reference(*args)
    print(f"critical path of {args[0]} steps beside {args[1]} branches: {value}")
    print(f"computed in {elapsed:.2f} s")


if __name__ == "__main__":
    main()
