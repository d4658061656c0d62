"""The worker's policy: the decisions optimizations change, in one object fed by the plan.

The worker machine (:mod:`.machine`) owns the bookkeeping (task states, values held, counts);
every *choice* it makes goes through a policy:

- :meth:`Policy.fetch`: which missing inputs to fetch before a task runs, in what order
  (every missing input must come: a task never runs without its inputs);
- :meth:`Policy.output`: whether a finished task's value is encoded (it may leave this worker)
  and whether the store must keep it even if every consumer became ready;
- :meth:`Policy.place`: which of the tasks a completion made ready run here, and which go to
  new flexible workers, grouped into shares (one invocation per share). A ready fan-in is
  placed like any other task.

A policy reads the plan through the machine's graph (``machine.graph.plan_of(task)`` gives the
task's worker, size and optimizations) and says which optimizations acted (``acted``), so the
TASK_COMPLETED event can report them. :class:`DefaultPolicy` is the behaviour without any
optimization: a completing flexible worker splits the flexible tasks it made ready into shares
sized by the platform's parallelism (:mod:`.shares`), keeps the first and invokes one worker
per other share; with no known parallelism every share is one task (WUKONG's policy).
Optimizations subclass or wrap it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..storage.base import Downstream, Gather
from .resources import task_memory_mb
from .shares import split

# The records below are made several times per task: plain slotted classes, not frozen ones,
# whose construction costs several times more.

if TYPE_CHECKING:
    from .machine import WorkerMachine


@dataclass(slots=True)
class OutputFacts:
    """What is known about a finished task's output when its completion is built."""

    task: int
    downstream: Sequence[Downstream]
    #: A requested output of the run.
    is_output: bool
    #: Some consumer is a map (its chain may take the value whole): it must be stored.
    feeds_map: bool
    #: For an element of a map: the map's gather (None for a static task).
    gather: Gather | None = None


@dataclass(slots=True)
class OutputDecision:
    #: Encode the value (it may leave this worker); False keeps it in memory only.
    encode: bool
    #: Store it even if every consumer became ready (requested, or consumers will fetch it).
    must_store: bool
    acted: tuple[str, ...] = ()


@dataclass(slots=True)
class Placement:
    #: Ready tasks to run on this worker, in order.
    keep: list[int]
    #: Ready tasks for new flexible workers: one invocation per share.
    invoke: list[list[int]]
    acted: tuple[str, ...] = ()


@dataclass(slots=True)
class FetchDecision:
    #: The missing inputs to fetch now, in order (all of them: the machine checks).
    inputs: list[int]
    acted: tuple[str, ...] = ()


class Policy(Protocol):
    def fetch(self, machine: WorkerMachine, task: int, missing: list[int]) -> FetchDecision: ...

    def output(self, machine: WorkerMachine, facts: OutputFacts) -> OutputDecision: ...

    def place(self, machine: WorkerMachine, completed: int, ready: list[int]) -> Placement:
        """``ready``: tasks the completion of ``completed`` made ready that may run here or on
        a new flexible worker (those pinned elsewhere went to their inboxes already)."""
        ...


class DefaultPolicy:
    """No optimization: fetch at start, store only what may be needed elsewhere, split fan-outs
    into shares (``parallelism``: how many workers the platform runs at once, None when it
    has no known bound)."""

    def __init__(self, parallelism: int | None = None) -> None:
        if parallelism is not None and parallelism < 1:
            raise ValueError(f"parallelism must be >= 1 or None, got {parallelism!r}")
        self.parallelism = parallelism

    def fetch(self, machine: WorkerMachine, task: int, missing: list[int]) -> FetchDecision:
        return FetchDecision(missing)

    def output(self, machine: WorkerMachine, facts: OutputFacts) -> OutputDecision:
        if facts.gather is not None:
            return self._element_output(machine, facts, facts.gather)
        down, me = facts.downstream, machine.worker
        # The common chain case: the one consumer needs nothing else and will run right here.
        stays_here = (
            len(down) == 1
            and down[0].ndeps == 1
            and down[0].worker == me
            and down[0].task in machine.graph
        )
        if not facts.is_output and not facts.feeds_map and (stays_here or not down):
            return OutputDecision(encode=False, must_store=False)
        pinned_elsewhere = any(d.worker is not None and d.worker != me for d in down)
        goes_out = len(down) > 1 or (me is not None and any(d.worker is None for d in down))
        must_store = facts.is_output or pinned_elsewhere or goes_out or facts.feeds_map
        return OutputDecision(encode=True, must_store=must_store)

    def _element_output(
        self, machine: WorkerMachine, facts: OutputFacts, gather: Gather
    ) -> OutputDecision:
        """An element's output goes to the next element of its chain (here, when it is the
        only one) and, when its map is gathered, to the map's consumers (stored)."""
        gathered = gather.is_output or bool(gather.downstream)
        if not gathered and len(facts.downstream) <= 1 and machine.worker is None:
            return OutputDecision(encode=False, must_store=False)
        must_store = gathered or len(facts.downstream) > 1 or machine.worker is not None
        return OutputDecision(encode=True, must_store=must_store)

    def place(self, machine: WorkerMachine, completed: int, ready: list[int]) -> Placement:
        me = machine.worker
        graph = machine.graph
        keep = [t for t in ready if graph.worker(t) == me] if me is not None else []
        flexible = [t for t in ready if graph.worker(t) is None] if me is not None else ready
        if not flexible:
            return Placement(keep, [])
        # A flexible worker keeps the first share; with work queued here, it hands on only
        # shares at least as large as that work (see .shares).
        queued = len(machine.ready) if me is None else 1
        shares = split(flexible, self.parallelism, lambda t: task_memory_mb(graph, t), queued)
        if me is None:
            keep = shares.pop(0)
        return Placement(keep, shares)
