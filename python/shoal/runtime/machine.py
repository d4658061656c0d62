"""A worker's decisions as a sans-IO state machine: events in, instructions out.

A worker holds a subDAG (see ``shoal._core.Graph.subdag_for``) and a queue of tasks that are
ready to run *here*. The I/O shell (:mod:`.worker`) feeds it events and carries out the
instructions it returns; nothing in this module touches a network, a clock or a thread, so every
decision is tested without Redis (``tests/runtime/test_machine.py``).

The cycle for one task::

    Execute(task, local inputs, missing inputs)      shell fetches, fills, runs the function
      -> on_executed(value) / on_failed(error)
    Complete(completion)                             shell runs the atomic completion
      -> on_completed(result)
    Invoke(...) for ready tasks that run elsewhere, then Execute(next) / WaitInbox / Exit

Who runs a ready task (DESIGN §5):

- a *flexible* worker (no worker id) keeps one ready flexible task and invokes a new flexible
  worker for each other one, with the subDAG below it cut from its own;
- a *pinned* worker (worker id W) runs the tasks pinned to W. Ready tasks pinned to another
  worker are pushed onto that worker's inbox by the completion itself (which also says when that
  worker must be invoked for the first time). Flexible tasks it makes ready are invoked. While
  tasks pinned to W remain, it waits on its inbox.

Outputs leave the worker only when needed: a value whose only consumer is the next task here
is never encoded. Otherwise it is encoded, and the completion stores it if the task is a
requested output, if any consumer may run on another worker (it also travels inline to the
workers this completion invokes, when small), or (decided atomically by the store) if some
consumer still waits for other inputs. So an output that is not stored was consumed on its own
worker: what a dead worker takes with it can be recomputed by one worker.

Maps (``shoal.map``; see :mod:`.elements`): the root of a map chain is ready once its source
and the chain's broadcast inputs are done. Running it *expands* the chain: the source's items
are counted and encoded, and ``Expand`` records them in the store, which returns the root's
elements as ready (a flexible worker keeps one, as for any fan-out). An element's completion
makes the next element of its chain ready and counts down its map's gather; outputs that feed
a chain, and elements whose map is gathered, are always stored.

Recovery (a worker died; see :mod:`.recovery`): the new worker runs ``recompute`` tasks again
(done tasks whose outputs died with the old worker; their completions are repeats) and then the
``resume`` tasks they feed. After a repeated completion of a ``recompute`` task, its consumers
among ``recompute`` and ``resume`` become ready here once their recomputed inputs are back.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import _core
from ..storage.base import (
    Completion,
    CompletionResult,
    Downstream,
    ErrorRecord,
    Expansion,
    Gather,
)
from .elements import DYNAMIC, MapView

# -- instructions --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Execute:
    task: int
    attempt: int
    #: Upstream values this worker holds, by task id.
    local: dict[int, Any]
    #: Upstream task ids to fetch from storage.
    missing: list[int]


@dataclass(frozen=True, slots=True)
class Complete:
    completion: Completion


@dataclass(frozen=True, slots=True)
class Expand:
    expansion: Expansion


@dataclass(frozen=True, slots=True)
class Invoke:
    worker: int | None
    start: list[int]
    #: A subDAG cut for the new worker (flexible), or None to use the stored one (pinned).
    subdag: _core.Graph | MapView | None
    inputs: dict[int, bytes] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Retry:
    task: int
    attempt: int
    delay_s: float
    error: TaskFailure


@dataclass(frozen=True, slots=True)
class Fail:
    record: ErrorRecord


@dataclass(frozen=True, slots=True)
class WaitInbox:
    worker: int


@dataclass(frozen=True, slots=True)
class Exit:
    reason: str


Instruction = Execute | Complete | Expand | Invoke | Retry | Fail | WaitInbox | Exit


@dataclass(frozen=True, slots=True)
class TaskFailure:
    """What the shell reports when a task's function raised."""

    exc_type: str
    message: str
    traceback: str
    time: float


@dataclass
class MachineConfig:
    worker_name: str
    inline_output_limit: int
    retry_backoff_s: float
    #: Encodes a value for the wire (``serialize.dumps_value``).
    encode: Callable[[Any], bytes]
    #: Returns a number in [0, 1) for retry jitter.
    jitter: Callable[[], float]


class WorkerMachine:
    def __init__(
        self,
        graph: _core.Graph | MapView,
        worker: int | None,
        config: MachineConfig,
        recompute: Sequence[int] = (),
        resume: Sequence[int] = (),
        skip: Sequence[int] = (),
    ) -> None:
        self.graph = graph
        self.worker = worker
        self.cfg = config
        self.values: dict[int, Any] = {}
        self.ready: deque[int] = deque()
        self.done: set[int] = set(skip)
        self.attempts: dict[int, int] = {}
        self.outputs = set(graph.outputs)
        mine = [] if worker is None else graph.tasks_of(worker)
        self.mine_left = len(mine) - len(self.done.intersection(mine))
        self.recompute = set(recompute)
        self.resume = set(resume)
        self.exited = False
        #: Encoded outputs of tasks being completed, for inline hand-over to invoked workers.
        self._encoded: dict[int, bytes] = {}
        #: The graph's maps, when it holds any (see :mod:`.elements`).
        self.view = graph if isinstance(graph, MapView) else None
        #: Encoded items of an expansion, by item id, for inline hand-over to elements.
        self._items: dict[int, bytes] = {}

    # -- events ------------------------------------------------------------------------------

    def start(self, start: Sequence[int], inputs: dict[int, Any]) -> list[Instruction]:
        """The invocation arrived: ``start`` tasks are ready, ``inputs`` came inline."""
        self.values.update(inputs)
        for t in start:
            self._check_runnable(t)
            self.ready.append(t)
        return self._next()

    def on_inbox(self, tasks: Sequence[int]) -> list[Instruction]:
        for t in tasks:
            self._check_runnable(t)
            if t not in self.done and t not in self.ready:
                self.ready.append(t)
        return self._next()

    def on_executed(self, task: int, value: Any, fetched: dict[int, Any]) -> list[Instruction]:
        self.values.update(fetched)
        if isinstance(value, Iterator) and self._feeds_map(task):
            # A generator feeding a map: read it once, as the list the chain maps over (it is
            # stored, and a generator can be neither pickled nor read twice).
            value = list(value)
        self.values[task] = value
        return [Complete(self._completion(task, value))]

    def _feeds_map(self, task: int) -> bool:
        return self.view is not None and any(
            self.view.is_map(d.task) for d in self.graph.downstream(task)
        )

    def on_failed(
        self, task: int, failure: TaskFailure, retryable: bool = True
    ) -> list[Instruction]:
        attempt = self.attempts.get(task, 0)
        retries = self.graph.options(task).retries
        if retryable and attempt < retries:
            self.attempts[task] = attempt + 1
            delay = self.cfg.retry_backoff_s * (2**attempt) * (0.5 + self.cfg.jitter())
            return [Retry(task, attempt + 1, delay, failure)]
        record = ErrorRecord(
            task=task,
            name=self.graph.name(task),
            attempt=attempt + 1,
            exc_type=failure.exc_type,
            message=failure.message,
            traceback=failure.traceback,
            worker=self.cfg.worker_name,
            time=failure.time,
        )
        self.exited = True
        return [Fail(record), Exit("task failed")]

    def on_expanded(
        self, task: int, items: list[Any], fetched: dict[int, Any]
    ) -> list[Instruction]:
        """The root of a map chain ran: its source produced ``items``."""
        view = self.view
        assert view is not None and view.is_root(task)
        self.values.update(fetched)
        item_base = view.item_base(task)
        encoded = [self.cfg.encode(item) for item in items]
        for i, (item, blob) in enumerate(zip(items, encoded, strict=True)):
            self.values[item_base + i] = item
            self._items[item_base + i] = blob
        chain = [task]
        for m in chain:  # the chain's maps, parents first
            chain.extend(view.child_maps(m))
        expansion = Expansion(
            root=task,
            width=len(items),
            items=encoded,
            item_base=item_base,
            element_base=view.element_base(task),
            maps=[view.gather(m) for m in chain],
            worker=self.worker,
            event={"name": self.graph.name(task), "elements": str(len(items) * len(chain))},
        )
        return [Expand(expansion)]

    def on_retry_due(self, task: int) -> list[Instruction]:
        return [self._execute(task)]

    def on_completed(self, task: int, result: CompletionResult) -> list[Instruction]:
        self.done.add(task)
        if self.graph.worker(task) == self.worker and self.worker is not None:
            self.mine_left -= 1
        if not result.first and task in self.recompute:
            self._ready_after_recompute(task)
        self._release_inputs(task)
        out: list[Instruction] = [Invoke(w, [], None) for w in result.invoke_workers]
        keep_one = self.worker is None
        encoded = self._encoded.pop(task, None)
        for t in result.ready:
            if self.graph.worker(t) == self.worker and (self.worker is not None or keep_one):
                self.ready.append(t)
                keep_one = False
                continue
            inputs = {}
            if encoded is not None and len(encoded) <= self.cfg.inline_output_limit:
                inputs[task] = encoded
            if t >= DYNAMIC:
                inputs = self._element_inputs(t, inputs)
            out.append(Invoke(None, [t], self.graph.subdag_for(None, [t]), inputs))
        out.extend(self._next())
        return out

    # -- internals ---------------------------------------------------------------------------

    def _ready_after_recompute(self, task: int) -> None:
        for c in self.graph.consumers(task):
            if (
                (c in self.recompute or c in self.resume)
                and c not in self.done
                and c not in self.ready
                and all(d in self.done for d in self.graph.deps(c) if d in self.recompute)
            ):
                self.ready.append(c)

    def _check_runnable(self, task: int) -> None:
        if task not in self.graph:
            raise ValueError(f"task {task} is not in this worker's subDAG")
        if self.graph.worker(task) != self.worker:
            raise ValueError(
                f"task {task} is pinned to worker {self.graph.worker(task)}, "
                f"not to this worker ({self.worker})"
            )

    def _next(self) -> list[Instruction]:
        while self.ready:
            t = self.ready.popleft()
            if t not in self.done:
                return [self._execute(t)]
        if self.worker is not None and self.mine_left > 0:
            return [WaitInbox(self.worker)]
        self.exited = True
        return [Exit("no more work")]

    def _element_inputs(self, element: int, inputs: dict[int, bytes]) -> dict[int, bytes]:
        """A root element handed to another worker takes its item along when it is small."""
        item = self.graph.deps(element)[0]
        blob = self._items.pop(item, None)
        if blob is None:
            return inputs
        self.values.pop(item, None)
        return {item: blob} if len(blob) <= self.cfg.inline_output_limit else {}

    def _execute(self, task: int) -> Execute:
        deps = self.graph.deps(task)
        if self.view is not None and self.view.is_root(task):
            deps = deps[:1]  # expanding needs the source only; elements fetch the rest
        local = {d: self.values[d] for d in deps if d in self.values}
        missing = [d for d in deps if d not in self.values]
        return Execute(task, self.attempts.get(task, 0) + 1, local, missing)

    def _completion(self, task: int, value: Any) -> Completion:
        down = [Downstream(d.task, d.ndeps, d.worker) for d in self.graph.downstream(task)]
        if task >= DYNAMIC:
            return self._element_completion(task, value, down)
        is_output = task in self.outputs
        # The common chain case: the one consumer needs nothing else and will run right here.
        stays_here = (
            len(down) == 1
            and down[0].ndeps == 1
            and down[0].worker == self.worker
            and down[0].task in self.graph
        )
        # An output feeding a map chain is always stored: the chain may take it whole too.
        feeds_map = self.view is not None and any(self.view.is_map(d.task) for d in down)
        if not is_output and not feeds_map and (stays_here or not down):
            return Completion(task, None, False, down, is_output, self.worker)
        output = self.cfg.encode(value)
        self._encoded[task] = output
        pinned_elsewhere = any(d.worker is not None and d.worker != self.worker for d in down)
        goes_out = len(down) > 1 or (
            self.worker is not None and any(d.worker is None for d in down)
        )
        must_store = is_output or pinned_elsewhere or goes_out or feeds_map
        return Completion(task, output, must_store, down, is_output, self.worker)

    def _element_completion(self, task: int, value: Any, down: list[Downstream]) -> Completion:
        """An element's output goes to the next element of its chain (here, when it is the only
        one) and, when its map is gathered, to the map's consumers (stored)."""
        assert self.view is not None
        found = self.view.element(task)
        assert found is not None
        gather: Gather = self.view.gather(found[0])
        gathered = gather.is_output or bool(gather.downstream)
        if not gathered and len(down) <= 1 and self.worker is None:
            return Completion(task, None, False, down, False, self.worker, gathers=[gather])
        output = self.cfg.encode(value)
        self._encoded[task] = output
        must_store = gathered or len(down) > 1 or self.worker is not None
        return Completion(task, output, must_store, down, False, self.worker, gathers=[gather])

    def _release_inputs(self, task: int) -> None:
        """Drops upstream values whose consumers in this subDAG all finished here."""
        for d in self.graph.deps(task):
            if d in self.values and all(c in self.done for c in self.graph.consumers(d)):
                del self.values[d]
