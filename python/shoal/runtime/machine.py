"""A worker's decisions as a sans-IO state machine: events in, instructions out.

A worker holds a subDAG (see ``shoal._core.Graph.subdag_for``) and runs the tasks that are ready
*here*. The I/O shell (:mod:`.worker`) feeds the machine events through its one entry point,
:meth:`WorkerMachine.handle`, and carries out the instructions it returns; nothing in this
module touches a network, a clock or a thread, so every decision is tested without Redis
(``tests/runtime/test_machine.py``). The choices that optimizations change (what to fetch, what
to store, what runs here and what goes to new workers) are made by a :mod:`.policy` object fed
by the plan; the machine keeps the books.

The cycle for one task::

    Execute(task, local inputs, missing inputs)      shell fetches, fills, runs the function
      -> Executed(value) / Failed(error)
    Complete(completion, then=next start)            shell runs the atomic completion
      -> Completed(result)
    Invoke(...) for ready tasks that run elsewhere, then Execute(next) / WaitInbox / Exit

One round trip per task: a ``Complete`` names the task that runs here next when it is known
before the answer (the head of the queue; else the first consumer that runs here, if this
completion makes it ready), and the shell sends that task's start with the completion. When
the store started it (``CompletionResult.started``), the next instruction is that very
``Execute``, and the policy's placement cannot send it elsewhere.

Who runs a ready task (DESIGN §5; :meth:`.policy.Policy.place`): a *flexible* worker (no worker
id) splits the flexible tasks a completion made ready into shares (:mod:`.shares`), keeps the
first and invokes a new flexible worker for each other share, with the subDAG below it cut from
its own; a *pinned* worker (worker id W) runs the tasks pinned to
W. Ready tasks pinned to another worker are pushed onto that worker's inbox by the completion
itself (which also says when that worker must be invoked for the first time). While tasks
pinned to W remain, it waits on its inbox.

Outputs leave the worker only when needed (:meth:`.policy.Policy.output`): a value whose only
consumer is the next task here is never encoded. Otherwise it is encoded, and the completion
stores it if the task is a requested output, if any consumer may run on another worker (it
also travels inline to the workers this completion invokes, when small), or (decided
atomically by the store) if some consumer still waits for other inputs. So an output that is
not stored was consumed on its own worker: what a dead worker takes with it can be recomputed
by one worker.

Maps (``shoal.map``; see :mod:`.elements`): the root of a map chain is ready once its source
and the chain's broadcast inputs are done. Running it *expands* the chain: the source's items
are counted and encoded, and ``Expand`` records them in the store, which returns the root's
elements as ready (they go out in shares, as any fan-out). An element's completion
makes the next element of its chain ready and counts down its map's gather; outputs that feed
a chain, and elements whose map is gathered, are always stored.

Recovery (a worker died; see :mod:`shoal.client.recovery`): the new worker runs ``recompute``
tasks again (done tasks whose outputs died with the old worker; their completions are repeats)
and then the ``resume`` tasks they feed. After a repeated completion of a ``recompute`` task,
its consumers among ``recompute`` and ``resume`` become ready here once their recomputed inputs
are back.

State
-----
``state: dict[int, TaskState]``
    Every task this worker has dealt with: READY (queued here), RUNNING (an ``Execute`` or a
    retry is out), COMPLETING (a ``Complete``/``Expand`` is out), DONE (completed, by this
    worker or, for ``skip`` tasks, before it), HANDED_OFF (invoked on another worker), FAILED.
    A task missing from it has not reached this worker. At most one task is RUNNING or
    COMPLETING at a time.
``ready: deque[int]``
    The tasks to run here, in order; each is READY in ``state`` (a task is queued once).
``values: dict[int, Any]``
    Upstream values held in memory, by task id (outputs of tasks run here, inline inputs,
    fetched inputs). A value is dropped once every consumer this subDAG holds is DONE
    (``_uses`` counts those left, per value, from the first of them to complete).
``attempts: dict[int, int]``
    Failed attempts so far, per task (absent: none).
``mine_left: int``
    Pinned worker: tasks pinned to it that are not DONE yet (0 for a flexible worker).
``recompute``, ``resume: set[int]``
    Recovery only (see above); fixed at construction.
``log: deque[tuple[type, tuple]]``
    The last ``MachineConfig.log_size`` events handled, each as its type and a brief of ids and
    counts (never values: the log must not keep them alive), formatted by :meth:`logged` and
    printed with the error when the worker fails unexpectedly.
``exited: bool``
    An ``Exit`` was returned; nothing more will be asked.

Example (a chain of two tasks on one flexible worker)::

    >>> import shoal
    >>> from shoal.graph import freeze
    >>> from shoal.storage.base import CompletionResult
    >>> inc = shoal.task(lambda x: x + 1, name="inc")
    >>> m = WorkerMachine(freeze([inc(inc(1))]).graph, None, MachineConfig.plain("w"))
    >>> m.handle(Started([0], {}))
    [Execute(task=0, attempt=1, local={}, missing=[])]
    >>> [complete] = m.handle(Executed(0, 2, {}))
    >>> complete.completion.output is None  # its one consumer runs here: never encoded
    True
    >>> m.handle(Completed(0, CompletionResult(True, [1], [], False)))
    [Execute(task=1, attempt=1, local={0: 2}, missing=[])]
    >>> m.state[0], m.state[1]
    (<TaskState.DONE: 'done'>, <TaskState.RUNNING: 'running'>)
    >>> for line in m.logged():
    ...     print(line)
    Started(start=[0], inputs=[])
    Executed(task=0)
    Completed(task=0, first=True, ready=[1], invoke=[])
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import _core
from ..serialize import dumps_value, value_place
from ..storage.base import (
    Completion,
    CompletionResult,
    Downstream,
    ErrorRecord,
    Expansion,
)
from .elements import DYNAMIC, MapView
from .policy import DefaultPolicy, OutputFacts, Placement, Policy

#: The most inputs a consumer may have for its start to ride with one of their completions.
_NAMED_FAN_IN = 4

# -- events (what the shell tells the machine) ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Started:
    """The invocation arrived: ``start`` tasks are ready, ``inputs`` came inline."""

    start: Sequence[int]
    inputs: dict[int, Any]

    def brief(self) -> tuple[Any, ...]:
        return (self.start, tuple(self.inputs))

    @staticmethod
    def describe(start: Sequence[int], inputs: tuple[int, ...]) -> str:
        return f"Started(start={_ids(start)}, inputs={_ids(sorted(inputs))})"


@dataclass(frozen=True, slots=True)
class InboxPopped:
    """Tasks pinned to this worker arrived on its inbox."""

    tasks: Sequence[int]

    def brief(self) -> tuple[Any, ...]:
        return (self.tasks,)

    @staticmethod
    def describe(tasks: Sequence[int]) -> str:
        return f"InboxPopped(tasks={_ids(tasks)})"


@dataclass(frozen=True, slots=True)
class Executed:
    """A task's function returned ``value``; ``fetched`` are the inputs the shell fetched."""

    task: int
    value: Any
    fetched: dict[int, Any]

    def brief(self) -> tuple[Any, ...]:
        return (self.task,)  # never the value: the log must not keep it alive

    @staticmethod
    def describe(task: int) -> str:
        return f"Executed(task={task})"


@dataclass(frozen=True, slots=True)
class Failed:
    """A task's function raised (or its output was refused: ``retryable`` False)."""

    task: int
    failure: TaskFailure
    retryable: bool = True

    def brief(self) -> tuple[Any, ...]:
        return (self.task, self.failure.exc_type)

    @staticmethod
    def describe(task: int, exc_type: str) -> str:
        return f"Failed(task={task}, exc_type={exc_type})"


@dataclass(frozen=True, slots=True)
class Expanded:
    """The root of a map chain ran: its source produced ``items``."""

    task: int
    items: list[Any]
    fetched: dict[int, Any]

    def brief(self) -> tuple[Any, ...]:
        return (self.task, len(self.items))

    @staticmethod
    def describe(task: int, width: int) -> str:
        return f"Expanded(task={task}, width={width})"


@dataclass(frozen=True, slots=True)
class RetryDue:
    """A retry's backoff is over."""

    task: int

    def brief(self) -> tuple[Any, ...]:
        return (self.task,)

    @staticmethod
    def describe(task: int) -> str:
        return f"RetryDue(task={task})"


@dataclass(frozen=True, slots=True)
class Completed:
    """The store recorded a completion (or an expansion) of ``task``."""

    task: int
    result: CompletionResult

    def brief(self) -> tuple[Any, ...]:
        r = self.result
        return (self.task, r.first, r.ready, r.invoke_workers)

    @staticmethod
    def describe(task: int, first: bool, ready: list[int], invoke: list[int]) -> str:
        return f"Completed(task={task}, first={first}, ready={_ids(ready)}, invoke={_ids(invoke)})"


def _ids(ids: Sequence[int], most: int = 8) -> str:
    shown = ", ".join(map(str, ids[:most]))
    return f"[{shown}{', ...' if len(ids) > most else ''}]"


MachineEvent = Started | InboxPopped | Executed | Failed | Expanded | RetryDue | Completed

# -- instructions (what the machine tells the shell) ----------------------------------------


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
    #: Optimizations that acted on this task (for its TASK_COMPLETED event).
    acted: tuple[str, ...] = ()
    #: The task to start with this completion, in the same round trip (the shell may not):
    #: if it starts, the machine's next instruction is this very Execute.
    then: Execute | None = None
    #: Start ``then`` only if this completion makes it ready (else it is queued here).
    then_if_ready: bool = False


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
    #: The task whose completion made it (for the invoked worker's report of its latency).
    by: int | None = None


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
    #: The exception itself, encoded for the run (empty when it cannot travel).
    exception: bytes = b""
    #: The traceback's frames from the user's function down, as JSON: a list of
    #: ``[file, function, line, module, end line, column, end column]``.
    frames: str = ""


class TaskState(enum.Enum):
    READY = "ready"
    RUNNING = "running"
    COMPLETING = "completing"
    DONE = "done"
    HANDED_OFF = "handed-off"
    FAILED = "failed"


@dataclass
class MachineConfig:
    worker_name: str
    inline_output_limit: int
    retry_backoff_s: float
    #: Encodes the value of a task (or item) for the wire, sealed for its place
    #: (``serialize.dumps_value``).
    encode: Callable[[int, Any], bytes]
    #: Returns a number in [0, 1) for retry jitter.
    jitter: Callable[[], float]
    #: The decisions optimizations change (see :mod:`.policy`).
    policy: Policy = field(default_factory=DefaultPolicy)
    #: How many events the machine remembers for error reports.
    log_size: int = 64

    @classmethod
    def plain(cls, worker_name: str) -> MachineConfig:
        """Defaults for examples and tests: 64 KiB inline limit, fixed jitter."""
        return cls(worker_name, 64 * 1024, 0.05, plain_encode, lambda: 0.5)


def plain_encode(task: int, value: Any) -> bytes:
    """How :meth:`MachineConfig.plain` encodes: as for a run named ``test``."""
    return dumps_value(value, value_place("test", task))


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
        self.policy = config.policy
        self.state: dict[int, TaskState] = dict.fromkeys(skip, TaskState.DONE)
        self.ready: deque[int] = deque()
        self.values: dict[int, Any] = {}
        self.attempts: dict[int, int] = {}
        self.outputs = set(graph.outputs)
        mine = [] if worker is None else graph.tasks_of(worker)
        self.mine_left = sum(1 for t in mine if self.state.get(t) is not TaskState.DONE)
        self.recompute = set(recompute)
        self.resume = set(resume)
        self.exited = False
        #: (event type, its brief): formatted only when printed, so logging costs no time.
        self.log: deque[tuple[type[MachineEvent], tuple[Any, ...]]] = deque(maxlen=config.log_size)
        #: Encoded outputs of tasks being completed, for inline hand-over to invoked workers.
        self._encoded: dict[int, bytes] = {}
        #: The graph's maps, when it holds any (see :mod:`.elements`).
        self.view = graph if isinstance(graph, MapView) else None
        #: Encoded items of an expansion, by item id, for inline hand-over to elements.
        self._items: dict[int, bytes] = {}
        #: Per value held: its consumers in this subDAG not done yet, once first counted.
        self._uses: dict[int, int] = {}
        #: The task whose start rides with the completion that is out (see ``Complete.then``).
        self._riding: Execute | None = None
        #: Optimizations that acted on a task before it completed (its placement, its fetch).
        self._acted: dict[int, tuple[str, ...]] = {}

    def handle(self, event: MachineEvent) -> list[Instruction]:
        """The one entry point: what to do next after ``event``."""
        self.log.append((type(event), event.brief()))
        match event:  # the two of every task first
            case Executed(task, value, fetched):
                return self._executed(task, value, fetched)
            case Completed(task, result):
                return self._completed(task, result)
            case Started(start, inputs):
                return self._started(start, inputs)
            case InboxPopped(tasks):
                return self._inbox(tasks)
            case Failed(task, failure, retryable):
                return self._failed(task, failure, retryable)
            case Expanded(task, items, fetched):
                return self._expanded(task, items, fetched)
            case RetryDue(task):
                return [self._execute(task)]
        raise TypeError(f"not a machine event: {event!r}")

    def is_done(self, task: int) -> bool:
        return self.state.get(task) is TaskState.DONE

    def logged(self) -> list[str]:
        """The events this machine handled last, oldest first, one line each."""
        return [kind.describe(*brief) for kind, brief in self.log]

    def format_log(self) -> str:
        """The events this machine handled last, oldest first (for error reports)."""
        lines = "\n".join(f"  {line}" for line in self.logged())
        return f"last {len(self.log)} events of the worker machine:\n{lines}"

    # -- transitions -------------------------------------------------------------------------

    def _started(self, start: Sequence[int], inputs: dict[int, Any]) -> list[Instruction]:
        self.values.update(inputs)
        for t in start:
            self._check_runnable(t)
            self._queue(t)
        return self._next()

    def _inbox(self, tasks: Sequence[int]) -> list[Instruction]:
        for t in tasks:
            self._check_runnable(t)
            if t not in self.state:
                self._queue(t)
        return self._next()

    def _executed(self, task: int, value: Any, fetched: dict[int, Any]) -> list[Instruction]:
        self.values.update(fetched)
        if isinstance(value, Iterator) and self._feeds_map(task):
            # A generator feeding a map: read it once, as the list the chain maps over (it is
            # stored, and a generator can be neither pickled nor read twice).
            value = list(value)
        self.values[task] = value
        self.state[task] = TaskState.COMPLETING
        completion, acted = self._completion(task, value)
        then, if_ready = self._next_start(completion.downstream)
        self._riding = then
        return [Complete(completion, acted, then, if_ready)]

    def _next_start(self, downstream: Sequence[Downstream]) -> tuple[Execute | None, bool]:
        """The task that runs here next, known before the completion's answer, so that its
        start rides with it: the head of the queue, else the first consumer that runs here if
        this completion makes it ready (the policy keeps it: see :meth:`_completed`). None
        when neither is known (recovery, map tasks, a fan-in waiting for others)."""
        if self.recompute or self.resume:
            return None, False
        ready = self.ready
        while ready and self.state.get(ready[0]) is not TaskState.READY:
            ready.popleft()  # run or handed off since it was queued
        if ready:
            return self._execute(ready[0], mark=False), False
        if self.view is not None:
            return None, False
        for d in downstream:
            # A consumer of many inputs is named only when it has few: naming one costs its
            # dependency list (a fan-in of 10,000 would cost that on each of its inputs).
            if (
                d.worker == self.worker
                and d.ndeps <= _NAMED_FAN_IN
                and d.task not in self.state
                and d.task in self.graph
            ):
                return self._execute(d.task, mark=False), True
        return None, False

    def _feeds_map(self, task: int) -> bool:
        return self.view is not None and any(
            self.view.is_map(d.task) for d in self.graph.downstream(task)
        )

    def _failed(self, task: int, failure: TaskFailure, retryable: bool) -> list[Instruction]:
        self._riding = None  # its completion never went out
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
            exception=failure.exception,
            frames=failure.frames,
        )
        self.state[task] = TaskState.FAILED
        self.exited = True
        return [Fail(record), Exit("task failed")]

    def _expanded(self, task: int, items: list[Any], fetched: dict[int, Any]) -> list[Instruction]:
        view = self.view
        assert view is not None and view.is_root(task)
        self.values.update(fetched)
        item_base = view.item_base(task)
        encoded = [self.cfg.encode(item_base + i, item) for i, item in enumerate(items)]
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
        )
        self.state[task] = TaskState.COMPLETING
        return [Expand(expansion)]

    def _completed(self, task: int, result: CompletionResult) -> list[Instruction]:
        self.state[task] = TaskState.DONE
        if self.worker is not None and self.graph.worker(task) == self.worker:
            self.mine_left -= 1
        if not result.first and task in self.recompute:
            self._ready_after_recompute(task)
        self._release_inputs(task)
        out: list[Instruction] = [Invoke(w, [], None, by=task) for w in result.invoke_workers]
        encoded = self._encoded.pop(task, None)
        placement = self.policy.place(self, task, result.ready)
        if placement.acted:
            for t in placement.keep:
                self._acted_on(t, placement.acted)
        riding, self._riding = self._riding, None
        started = riding if riding is not None and result.started is not None else None
        if started is not None:  # it runs here next: it started with this completion
            _keep_started(placement, started.task)
            self.state[started.task] = TaskState.RUNNING
            if self.ready and self.ready[0] == started.task:
                self.ready.popleft()
        for t in placement.keep:
            self._queue(t)
        for share in placement.invoke:
            inputs: dict[int, bytes] = {}
            if encoded is not None and len(encoded) <= self.cfg.inline_output_limit:
                inputs[task] = encoded
            for t in share:
                self.state[t] = TaskState.HANDED_OFF
                if t >= DYNAMIC:
                    self._element_inputs(t, inputs)
            out.append(Invoke(None, share, self.graph.subdag_for(None, share), inputs, task))
        out.extend([started] if started is not None else self._next())
        return out

    # -- internals ---------------------------------------------------------------------------

    def _queue(self, task: int) -> None:
        if self.state.get(task) not in (TaskState.READY, TaskState.DONE):
            self.state[task] = TaskState.READY
            self.ready.append(task)

    def _ready_after_recompute(self, task: int) -> None:
        for c in self.graph.consumers(task):
            if (
                (c in self.recompute or c in self.resume)
                and c not in self.state
                and all(self.is_done(d) for d in self.graph.deps(c) if d in self.recompute)
            ):
                self._queue(c)

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
            if self.state.get(t) is TaskState.READY:
                return [self._execute(t)]
        if self.worker is not None and self.mine_left > 0:
            return [WaitInbox(self.worker)]
        self.exited = True
        return [Exit("no more work")]

    def _element_inputs(self, element: int, inputs: dict[int, bytes]) -> None:
        """A root element handed to another worker takes its item along when it is small."""
        item = self.graph.deps(element)[0]
        blob = self._items.pop(item, None)
        if blob is None:
            return
        self.values.pop(item, None)
        self._uses.pop(item, None)
        if len(blob) <= self.cfg.inline_output_limit:
            inputs[item] = blob

    def _execute(self, task: int, mark: bool = True) -> Execute:
        """Runs ``task`` next (``mark``: it is RUNNING from now; else it is only asked about)."""
        deps = self.graph.deps(task)
        if self.view is not None and self.view.is_root(task):
            deps = deps[:1]  # expanding needs the source only; elements fetch the rest
        local = {d: self.values[d] for d in deps if d in self.values}
        missing = [d for d in deps if d not in self.values]
        fetch = self.policy.fetch(self, task, missing)
        if fetch.inputs is not missing and sorted(fetch.inputs) != sorted(missing):
            raise ValueError(
                f"policy {type(self.policy).__name__} fetches {fetch.inputs} for task {task}, "
                f"which needs {missing}: every missing input must be fetched"
            )
        if fetch.acted:
            self._acted_on(task, fetch.acted)
        if mark:
            self.state[task] = TaskState.RUNNING
        return Execute(task, self.attempts.get(task, 0) + 1, local, fetch.inputs)

    def _completion(self, task: int, value: Any) -> tuple[Completion, tuple[str, ...]]:
        down = [Downstream(d.task, d.ndeps, d.worker) for d in self.graph.downstream(task)]
        gathers = []
        if task >= DYNAMIC:
            assert self.view is not None
            found = self.view.element(task)
            assert found is not None
            gathers = [self.view.gather(found[0])]
            is_output = feeds_map = False
        else:
            is_output = task in self.outputs
            # An output feeding a map chain is always stored: the chain may take it whole too.
            feeds_map = self.view is not None and any(self.view.is_map(d.task) for d in down)
        facts = OutputFacts(task, down, is_output, feeds_map, gathers[0] if gathers else None)
        decision = self.policy.output(self, facts)
        output = None
        if decision.encode:
            output = self.cfg.encode(task, value)
            self._encoded[task] = output
        completion = Completion(
            task, output, decision.must_store, down, is_output, self.worker, gathers=tuple(gathers)
        )
        acted = self._acted.pop(task, ())
        if decision.acted:
            acted = tuple(dict.fromkeys((*acted, *decision.acted)))
        return completion, acted

    def _acted_on(self, task: int, kinds: tuple[str, ...]) -> None:
        known = self._acted.get(task, ())
        self._acted[task] = tuple(dict.fromkeys((*known, *kinds)))

    def _release_inputs(self, task: int) -> None:
        """Drops upstream values whose consumers in this subDAG are all done here. The
        consumers left are counted once per value and counted down after (a fan-out's source
        has a consumer per branch: looking at all of them on every completion was quadratic)."""
        for d in dict.fromkeys(self.graph.deps(task)):
            if d not in self.values:
                continue
            left = self._uses.get(d)
            if left is None:
                left = sum(1 for c in set(self.graph.consumers(d)) if not self.is_done(c))
            else:
                left -= 1
            if left <= 0:
                del self.values[d]
                self._uses.pop(d, None)
            else:
                self._uses[d] = left


def _keep_started(placement: Placement, task: int) -> None:
    """A task that started with a completion runs here, whatever the policy placed: it leaves
    any share the policy would invoke (the policy keeps it when it is its first choice, as the
    default's first share holds the first ready task)."""
    if task in placement.keep:
        placement.keep.remove(task)
        return
    for share in placement.invoke:
        if task in share:
            share.remove(task)
    placement.invoke[:] = [share for share in placement.invoke if share]
