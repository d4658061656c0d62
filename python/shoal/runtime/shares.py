"""How many workers a batch of ready tasks goes to, and which tasks go together.

When a completion makes several tasks ready at once (a fan-out), and when a run starts with
many roots, the tasks are split into *shares*: one worker per share. One worker per task
(WUKONG's choice) pays an invocation, a process hand-off and a subDAG decode for every task,
which for short tasks costs more than the tasks; one share per slot of the platform wastes
slots when tasks are uneven. So:

- a platform that runs at most ``parallelism`` workers at once gets ``SHARES_PER_SLOT`` shares
  per slot (and a single share when it has one slot). The shares wait in the platform's queue,
  so a worker that runs dry early takes the next share that has not started: uneven shares
  rebalance at the grain of a share, which is at most 1/``SHARES_PER_SLOT`` of a slot's work;
- a platform with no known bound (``parallelism`` None) gets one share per task;
- a worker with work queued hands on shares no smaller than that work (``at_least``): new
  workers are worth their invocation only with as much to do as the invoker has, and a
  worker that still has work is not about to run dry. So a share that keeps finding small
  fan-outs (a block of a matrix feeding 16 products) keeps them, and only a worker with
  nothing else to do spreads a fan-out over the platform;
- tasks of one share are neighbours in the order given (the graph's order), so siblings of a
  tree land together and their parent becomes ready where its inputs are;
- tasks that ask for different memory sizes never share a worker (a share is invoked at the
  largest size among its tasks).

Shares are balanced by task count: with no run history there is nothing better to weigh
them by (the planners weigh by predicted work).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

#: Shares per slot of a bounded platform (see the module docstring).
SHARES_PER_SLOT = 4


def share_count(tasks: int, parallelism: int | None, at_least: int = 1) -> int:
    """How many shares ``tasks`` ready tasks are split into, each of ``at_least`` tasks
    (when there are that many)."""
    if tasks <= 0:
        return 0
    most = (
        tasks if parallelism is None else parallelism * (1 if parallelism == 1 else SHARES_PER_SLOT)
    )
    return max(1, min(tasks, most, tasks // max(1, at_least)))


def split(
    tasks: Sequence[int],
    parallelism: int | None,
    size_of: Callable[[int], int | None] = lambda t: None,
    at_least: int = 1,
) -> list[list[int]]:
    """``tasks`` in shares: contiguous runs of near-equal length, one size class each, in the
    order given (the first share is the one the caller keeps, if it keeps one)."""
    classes: dict[int | None, list[int]] = {}
    for t in tasks:
        classes.setdefault(size_of(t), []).append(t)
    shares: list[list[int]] = []
    for group in classes.values():
        count = share_count(len(group), parallelism, at_least)
        base, extra = divmod(len(group), count)
        at = 0
        for i in range(count):
            n = base + (1 if i < extra else 0)
            shares.append(list(group[at : at + n]))
            at += n
    return shares
