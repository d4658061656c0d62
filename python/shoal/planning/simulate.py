"""A discrete-event simulation of a plan: when each task would run, and the makespan.

The simulated run goes as a real one does, deciding with the same code:

- counting is :class:`~shoal.storage.state.RunState` (the memory store's transitions): each
  completion counts its consumers down and says which became ready, which pinned workers
  receive their first task (their inboxes), and when the run is complete;
- where ready flexible tasks go is the worker policy the runtime uses
  (:func:`~shoal.optimizations.policy.policy_for`, with the platform's parallelism): the
  completing worker keeps one share and invokes a worker per other share, unless the plan's
  optimizations say otherwise (a ``cluster`` keeps them all); a run's roots are split into
  shares as at submission;
- the platform (:class:`Platform`) runs at most ``slots`` workers at once; an invocation waits
  for a free slot, takes an idle process if one was used within ``keep_warm_s`` (a warm start)
  or starts a new one (a cold start);
- a worker runs its queue one task at a time. A task's phases are predicted
  (:mod:`.predict`): ``prep`` (its start round trip and the fetch of the inputs this worker does
  not hold, by their predicted bytes), ``exec`` (its function, by its input bytes and the
  worker's size), ``store`` (its output's encoding, upload and completion); a pinned worker
  whose queue runs dry waits on its inbox until its next task arrives, giving its slot to the
  next invocation meanwhile (as the local pool does with a parked process).

Time 0 is RUN_SUBMITTED; the makespan is when the last requested output's completion is
recorded (RUN_COMPLETED), the definition the run's own record uses.

State (of :class:`_Sim`): the event heap (time, sequence, action), the run state, the
simulated workers (queue, values held, the process they run on), the platform's idle processes
and waiting invocations, and per task its predicted times.
"""

from __future__ import annotations

import functools
import heapq
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from .. import _core
from ..optimizations.policy import policy_for, root_shares
from ..runtime.elements import MapView, view
from ..runtime.resources import task_memory_mb
from ..storage.base import Completion, Downstream, Expansion
from ..storage.state import RunState, Step

Graph = _core.Graph | MapView
#: The width a map chain is simulated at when no earlier run says.
DEFAULT_WIDTH = 1


class Quantities(Protocol):
    """What the simulation asks of predictions (:class:`.predict.Predictions`, or a sampler
    of them for Monte-Carlo)."""

    def exec_s(
        self,
        fn: str,
        code: str,
        input_bytes: float,
        cpu: float | None = None,
        acted: tuple[str, ...] = (),
    ) -> float: ...

    def output_bytes(self, fn: str, code: str, input_bytes: float) -> float: ...

    def prep_s(self, fetched_bytes: float, cold: bool = False) -> float: ...

    def first_call_s(self, fn: str, code: str) -> float: ...

    def gap_s(self, fetched_bytes: float) -> float: ...

    def store_s(self, output_bytes: float) -> float: ...

    def start_s(self, kind: str, overlap: int = 0) -> float: ...

    def dispatch_s(self) -> float: ...


@dataclass(frozen=True)
class Platform:
    """What the simulated platform can do (``Capabilities`` plus the pool's keep-warm)."""

    #: Workers at once (None: no bound; each share then is one task).
    slots: int | None = None
    keep_warm_s: float = math.inf
    #: Idle warm processes when the run starts (a session's earlier runs leave some).
    warm: int = 0
    #: Whether a sized worker's CPU share is enforced (Lambda's rule, ``backends/cpu.py``).
    cpu_shares: bool = False


@dataclass(frozen=True, slots=True)
class TaskTimes:
    """One task's predicted times, seconds after submission."""

    worker: str
    ready: float
    start: float
    end: float
    done: float
    exec_s: float


@dataclass(frozen=True, slots=True)
class WorkerLife:
    start: float
    end: float
    kind: str  # cold | warm
    memory_mb: int | None
    tasks: int


@dataclass
class Simulation:
    makespan_s: float
    tasks: dict[int, TaskTimes]
    workers: dict[str, WorkerLife]
    #: The graph's longest path by predicted execution, and its total execution.
    critical_path: list[int]
    critical_exec_s: float
    gb_s: float
    cold_starts: int
    warm_starts: int
    #: Wall time the simulation took, seconds.
    took_s: float = 0.0


# -- the simulated parts -------------------------------------------------------------------


@dataclass(eq=False)
class _Worker:
    """A simulated worker: what the worker policy reads of a machine (``worker``,
    ``graph``, ``ready``) plus its schedule."""

    label: str
    worker: int | None
    graph: Graph
    ready: deque[int] = field(default_factory=deque)
    held: set[int] = field(default_factory=set)
    begin: float = 0.0
    #: Where its lifetime (GB-seconds) starts.
    started: float = 0.0
    memory_mb: int | None = None
    kind: str = "cold"
    tasks: int = 0
    parked: bool = False
    #: When its last task's function returned (None: its next task is its first, or it
    #: parked since: that start is a round trip of its own).
    last_end: float | None = None
    #: The process it runs on: the functions that process has called already.
    process: set[tuple[str, str]] = field(default_factory=set)


@dataclass(eq=False)
class _Sim:
    graph: Graph
    q: Quantities
    platform: Platform
    identity: Callable[[int], tuple[str, str]]
    #: Task -> (execution s, output bytes) measured in a recorded run (``shoal what-if``).
    measured: Mapping[int, tuple[float, float]] = field(default_factory=dict)
    #: A map chain's root name -> the width to expand it to.
    widths: Mapping[str, int] = field(default_factory=dict)
    heap: list[tuple[float, int, Callable[[float], None]]] = field(default_factory=list)
    seq: int = 0
    times: dict[int, TaskTimes] = field(default_factory=dict)
    out_bytes: dict[int, float] = field(default_factory=dict)
    ready_at: dict[int, float] = field(default_factory=dict)
    lives: dict[str, WorkerLife] = field(default_factory=dict)
    #: Idle processes: since when, and the functions each has called.
    idle: list[tuple[float, set[tuple[str, str]]]] = field(default_factory=list)
    running: int = 0
    waiting: deque[_Worker] = field(default_factory=deque)
    pinned: dict[int, _Worker] = field(default_factory=dict)
    all: list[_Worker] = field(default_factory=list)
    #: When each cold start so far is ready (to count those under way at a new one).
    starting: list[float] = field(default_factory=list)
    finished_at: float | None = None
    invocations: int = 0

    def __post_init__(self) -> None:
        g = self.graph
        self.maps = g if isinstance(g, MapView) else None
        self.state = RunState(outputs_left=len(set(g.outputs)), clock=lambda: 0.0)
        self.policy = policy_for(g, self.platform.slots)
        self.outputs = set(g.outputs)
        self.down: dict[int, list[Downstream]] = {}
        #: The optimizations that acted on each task, as placement said (sorted kinds).
        self.acted: dict[int, tuple[str, ...]] = {}
        self.idle = [(0.0, set()) for _ in range(self.platform.warm)]

    def at(self, t: float, action: Callable[[float], None]) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, action))

    def run(self) -> None:
        while self.heap and self.finished_at is None:
            t, _, action = heapq.heappop(self.heap)
            action(t)

    # -- the platform ---------------------------------------------------------------------

    def invoke(self, t: float, w: _Worker) -> None:
        self.invocations += 1
        slots = self.platform.slots
        if slots is not None and self.running >= slots:
            self.waiting.append(w)
            return
        self._begin(t, w)

    def _begin(self, t: float, w: _Worker, handover: bool = False) -> None:
        """``w`` takes a slot at ``t`` (``handover``: the one an invocation just left)."""
        self.running += 1
        keep = self.platform.keep_warm_s
        self.idle = [p for p in self.idle if t - p[0] <= keep]
        w.kind = "warm" if self.idle else "cold"
        w.process = self.idle.pop()[1] if self.idle else set()
        overlap = 0
        if w.kind == "cold":  # processes starting at once share the cores
            overlap = sum(1 for ready in self.starting if ready > t)
        kind = "handover" if handover and w.kind == "warm" else w.kind
        # A hand-over's samples run from the slot's last completion to the next task: they
        # hold the invocation's dispatch already.
        dispatch = 0.0 if kind == "handover" else self.q.dispatch_s()
        w.begin = t + self.q.start_s(kind, overlap) + dispatch
        # Its lifetime counts from the start of its process when cold (as a run's record
        # does), from when it was ready when warm.
        w.started = t if w.kind == "cold" else w.begin
        if w.kind == "cold":
            self.starting.append(w.begin)
        self.at(w.begin, functools.partial(self.step, w=w))

    def _end(self, t: float, w: _Worker) -> None:
        self.lives[w.label] = WorkerLife(w.started, t, w.kind, w.memory_mb, w.tasks)
        self.idle.append((t, w.process))
        self._release_slot(t)

    def _release_slot(self, t: float) -> None:
        self.running -= 1
        slots = self.platform.slots
        if self.waiting and (slots is None or self.running < slots):
            self._begin(t, self.waiting.popleft(), handover=True)

    # -- a worker ---------------------------------------------------------------------------

    def step(self, t: float, *, w: _Worker) -> None:
        """``w`` is free at ``t``: run its next task, wait on its inbox, or exit."""
        w.parked = False
        if not w.ready and w.worker is not None:
            box = self.state.inboxes.pop(w.worker, None)
            if box:
                w.ready.extend(box)
            elif any(x not in self.state.done for x in self.graph.tasks_of(w.worker)):
                # Woken by the completion that fills its inbox. A parked worker computes
                # nothing, so, as in the pool, its slot goes to the next invocation.
                w.parked = True
                w.last_end = None
                self._release_slot(t)
                return
        if not w.ready:
            self._end(t, w)
            return
        task = w.ready.popleft()
        g = self.graph
        fn, code = self.identity(task)
        deps = g.deps(task)
        fetched = sum(self.out_bytes.get(d, 0.0) for d in deps if d not in w.held)
        size = g.plan_of(task).size
        cpu = None if size is None else size.cpu
        if w.last_end is None:  # a start of its own: the process's first is cold
            start = t + self.q.prep_s(fetched, cold=w.kind == "cold" and not w.tasks)
        else:  # started with the previous task's completion (one round trip for both)
            start = max(t, w.last_end + self.q.gap_s(fetched))
        known = self.measured.get(task)
        if self.maps is not None and self.maps.is_root(task):
            ex, out = 0.0, 0.0  # a chain's root runs no function: it splits its source
        elif known is not None:  # a replay: what this task did when it ran
            ex, out = known
        else:
            # The models are in fetched bytes: what a task's record counts as its input.
            ex = self.q.exec_s(fn, code, fetched, cpu, self.acted.get(task, ()))
            out = self.q.output_bytes(fn, code, fetched)
            if (fn, code) not in w.process:
                ex += self.q.first_call_s(fn, code)
        w.process.add((fn, code))
        self.out_bytes[task] = out
        end = start + ex
        done = end + self.q.store_s(out)
        ready = self.ready_at.get(task, 0.0)
        self.times[task] = TaskTimes(w.label, ready, start, end, done, ex)
        w.held.update(deps)
        w.tasks += 1
        w.last_end = end
        self.at(done, lambda now: self.completed(now, w, task))

    def completed(self, t: float, w: _Worker, task: int) -> None:
        g = self.graph
        down = self.down.get(task)
        if down is None:
            down = self.down[task] = [
                Downstream(d.task, d.ndeps, d.worker) for d in g.downstream(task)
            ]
        boxes = self.state.inboxes
        before = {d.worker: len(boxes.get(d.worker, ())) for d in down if d.worker is not None}
        result = self._change(task, down, w).result
        w.held.add(task)
        if result.run_finished:
            self.finished_at = t
            return
        for r in result.ready:
            self.ready_at[r] = t
        for pw, n in before.items():  # tasks this completion put in a pinned worker's inbox
            for r in list(boxes.get(pw, ()))[n:]:
                self.ready_at[r] = t
        placed = self.policy.place(w, task, result.ready) if result.ready else None  # type: ignore[arg-type]
        if placed is not None:
            w.ready.extend(placed.keep)
            if placed.acted:  # as the worker machine reports them: on the tasks kept
                kinds = tuple(sorted(placed.acted))
                for r in placed.keep:
                    self.acted[r] = kinds
            for share in placed.invoke:
                self.invoke(t, self._flexible(share))
        for pw in result.invoke_workers:
            self.invoke(t, self._pinned(pw))
        for pw, box in list(self.state.inboxes.items()):
            sleeper = self.pinned.get(pw)
            if box and sleeper is not None and sleeper.parked:
                sleeper.parked = False
                self.running += 1  # back on its process, whether or not a slot is free
                self.at(t, functools.partial(self.step, w=sleeper))
        self.at(t, functools.partial(self.step, w=w))

    def _change(self, task: int, down: list[Downstream], w: _Worker) -> Step:
        """The run state's change for ``task``: an expansion for a chain's root, else its
        completion (an element's counts its map's gather down)."""
        v = self.maps
        if v is not None and v.is_root(task):
            width = self.widths.get(v.name(task), DEFAULT_WIDTH)
            chain = [task]
            for m in chain:
                chain.extend(v.child_maps(m))
            x = Expansion(
                task,
                width,
                [b""] * width,
                v.item_base(task),
                v.element_base(task),
                [v.gather(m) for m in chain],
                w.worker,
            )
            return self.state.expand(x, 0.0)
        found = v.element(task) if v is not None else None
        if v is not None and found is not None:
            c = Completion(task, None, False, down, False, w.worker, gathers=(v.gather(found[0]),))
        else:
            c = Completion(task, None, False, down, task in self.outputs, w.worker)
        return self.state.complete(c, 0.0)

    def _flexible(self, share: list[int]) -> _Worker:
        g = self.graph
        sizes = [mb for x in share if (mb := task_memory_mb(g, x)) is not None]
        label = f"f{len(self.all)}"
        w = _Worker(label, None, g, deque(share), memory_mb=max(sizes, default=None))
        self.all.append(w)
        return w

    def _pinned(self, worker: int) -> _Worker:
        size = self.graph.worker_size(worker)
        w = _Worker(
            f"w{worker}", worker, self.graph, memory_mb=None if size is None else size.memory_mb
        )
        self.pinned[worker] = w
        self.all.append(w)
        return w


def platform_of(backend: object) -> Platform:
    """What a backend's platform is to the simulation: its slots, keep-warm, warm processes."""
    caps = getattr(backend, "capabilities", None)
    slots = getattr(caps, "parallelism", None)
    reuse = bool(getattr(caps, "warm_reuse", False))
    keep = float(getattr(backend, "keep_warm_s", math.inf)) if reuse else 0.0
    warm = int(getattr(backend, "warm_processes", 0)) if reuse else 0
    shares = bool(getattr(backend, "enforces_cpu", False))
    return Platform(slots=slots, keep_warm_s=keep, warm=warm, cpu_shares=shares)


def simulate(
    graph: Graph,
    q: Quantities,
    platform: Platform,
    identity: Callable[[int], tuple[str, str]],
    measured: Mapping[int, tuple[float, float]] | None = None,
    widths: Mapping[str, int] | None = None,
) -> Simulation:
    """The simulated run of ``graph`` (its plan table included) on ``platform``; tasks in
    ``measured`` take the execution time and output size given there (a recorded run's); a map
    chain expands to its root's width in ``widths`` (by the root's name; default 1)."""
    began = time.perf_counter()
    graph = view(graph) if isinstance(graph, _core.Graph) else graph
    sim = _Sim(graph, q, platform, identity, dict(measured or {}), dict(widths or {}))
    flexible: list[int] = []
    pinned_roots: dict[int, list[int]] = {}
    for root in graph.roots():
        w = graph.worker(root)
        if w is None:
            flexible.append(root)
        else:
            pinned_roots.setdefault(w, []).append(root)
    for share in root_shares(graph, flexible, platform.slots):
        sim.invoke(0.0, sim._flexible(share))
    for w, roots in pinned_roots.items():
        pw = sim._pinned(w)
        pw.ready.extend(roots)
        sim.state.started.add(w)
        sim.invoke(0.0, pw)
    sim.run()
    if sim.finished_at is None:
        left = len(graph) - len(sim.times)
        raise RuntimeError(f"the simulation stalled with {left} tasks not run (a bug of shoal's)")
    makespan = sim.finished_at
    for sw in sim.all:  # still running or parked when the run ended: released then
        if sw.label not in sim.lives and sw.tasks:
            sim.lives[sw.label] = WorkerLife(sw.started, makespan, sw.kind, sw.memory_mb, sw.tasks)
    path, path_exec = critical_path(graph, {t: x.exec_s for t, x in sim.times.items()})
    gb_s = sum(
        (life.memory_mb or 1024) / 1024 * (life.end - life.start) for life in sim.lives.values()
    )
    return Simulation(
        makespan_s=makespan,
        tasks=sim.times,
        workers=sim.lives,
        critical_path=path,
        critical_exec_s=path_exec,
        gb_s=gb_s,
        cold_starts=sum(1 for x in sim.lives.values() if x.kind == "cold"),
        warm_starts=sum(1 for x in sim.lives.values() if x.kind == "warm"),
        took_s=time.perf_counter() - began,
    )


def critical_path(graph: Graph, exec_s: Mapping[int, float]) -> tuple[list[int], float]:
    """The longest path by ``exec_s`` through the tasks it names (tasks in order) and its
    total. The tasks are taken in a topological order of their dependencies among them."""
    graph = view(graph) if isinstance(graph, _core.Graph) else graph  # map elements too
    deps = {t: [d for d in dict.fromkeys(graph.deps(t)) if d in exec_s] for t in exec_s}
    waiting = {t: len(ds) for t, ds in deps.items()}
    consumers: dict[int, list[int]] = {}
    for t, ds in deps.items():
        for d in ds:
            consumers.setdefault(d, []).append(t)
    todo = deque(t for t, n in waiting.items() if n == 0)
    best: dict[int, tuple[float, int | None]] = {}
    while todo:
        t = todo.popleft()
        before = max(((best[d][0], d) for d in deps[t]), default=(0.0, None))
        best[t] = (before[0] + exec_s[t], before[1])
        for c in consumers.get(t, ()):
            waiting[c] -= 1
            if waiting[c] == 0:
                todo.append(c)
    if not best:
        return [], 0.0
    end = max(best, key=lambda t: best[t][0])
    total = best[end][0]
    path: list[int] = []
    at: int | None = end
    while at is not None:
        path.append(at)
        at = best[at][1]
    return path[::-1], total


def percentiles(values: list[float], qs: tuple[float, ...] = (0.5, 0.95)) -> dict[float, float]:
    s = sorted(values)
    out = {}
    for q in qs:
        pos = q * (len(s) - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, len(s) - 1)
        out[q] = s[lo] + (s[hi] - s[lo]) * (pos - lo)
    return out
