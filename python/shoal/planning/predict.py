"""Predictions from run history: every quantity a plan needs, with its spread.

For each function identity, three models of execution time are fitted and judged on the
function's own samples by leave-one-out error (the median |error| / actual of predicting each
sample from all the others); the best one is kept, per function (a model must beat the
simpler ones by 5 %: mean, median, linear):

- ``mean``: the mean of every sample ever recorded (the baseline the issue compares with);
- ``median``: the median of the kept samples (short tasks have heavy tails: the typical
  call is well below the mean; the Monte-Carlo keeps the tails);
- ``linear``: ``a + b * input_bytes`` by least squares on the running sums (``b >= 0``: more
  input never makes a function faster; a negative slope falls back to the mean). Input bytes
  are the fetched ones, as a task's record counts them.

A function's first call in a process is fitted apart (``first_call_s``: the extra time of
imports and caches warming), and execution on the later calls.

Least squares on sums rather than, say, a regression tree: the sums are what the history
keeps of the runs whose samples were trimmed, and a line in input bytes is what a researcher
can read. Output bytes are fitted by the mean and the line. The data movement of a task is
fitted across all functions (the platform moves bytes, not functions), against fetched bytes:
``prep_s`` for a worker's first task (its start's round trip and fetch) and ``gap_s`` for the
others (the previous task's completion, this one's start riding with it, the fetch);
``store_s`` (encode, upload, completion: when consumers elsewhere can start) against output
bytes. Starts are the
platform's start samples: cold ones by how many other cold starts were under way, warm ones,
and the hand-over of a slot one invocation left to the next.

Worker size: a function's samples at the size asked for are used alone when they differ from
its other sizes' samples by evidence (:func:`differs`: a rank test and a 10 % effect); otherwise
all of them, with execution scaled by the CPU share (``min(1, cpu)``, one thread) where both
sizes state one. Memory alone does not change execution on one machine until sizes are
enforced, so one run at a new size does not throw away the runs at the others.

**SLA** (``"average"`` or a percentile such as ``"p95"``): each quantity is its fitted value
times the SLA's quantile of the leave-one-out ratios ``actual / predicted`` of its samples,
always toward the longer or larger side (durations and sizes are costs): a P95 prediction
says "95 % of runs take at most this", and a percentile from the median up is never below
the average prediction. With fewer than :data:`MIN_SAMPLES` samples the ratio is
1 and the prediction's confidence says so; with none, defaults stand in
(:class:`Defaults`) and ``confidence`` is ``"none"``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from random import Random

from ..errors import UsageError
from ..metrics.history import FunctionHistory, HistoryView, SizeHistory, parse_size
from ..metrics.records import StartSample, TaskSample

#: Samples a function needs before its spread is trusted.
MIN_SAMPLES = 3


@dataclass(frozen=True)
class Defaults:
    """What a prediction uses where history has nothing (one machine's typical figures)."""

    exec_s: float = 0.001
    prep_s: float = 0.0003
    gap_s: float = 0.0005
    store_s: float = 0.0003
    output_bytes: int = 64
    cold_start_s: float = 0.3
    warm_start_s: float = 0.002
    dispatch_s: float = 0.002


def parse_sla(sla: str | float) -> float | None:
    """``"average"`` -> None; ``"p95"``, ``"95"``, ``95`` or ``0.95`` -> 0.95."""
    if isinstance(sla, str):
        text = sla.strip().lower()
        if text in ("average", "mean", "avg"):
            return None
        percent = text.startswith("p")  # "p1" is the 1st percentile, not q = 1
        text = text.removeprefix("p")
        try:
            value = float(text) / (100 if percent else 1)
        except ValueError:
            raise UsageError(
                f"sla must be 'average' or a percentile like 'p95', got {sla!r}"
            ) from None
    elif isinstance(sla, int | float) and not isinstance(sla, bool):
        value = float(sla)
    else:
        raise UsageError(f"sla must be 'average' or a percentile like 'p95', got {sla!r}")
    q = value / 100 if value > 1 else value
    if not 0 < q < 1:
        raise UsageError(f"sla percentile must be in (0, 100), got {sla!r}")
    return q


@dataclass(frozen=True)
class Line:
    """``a + b * x`` (b = 0: a mean), with the leave-one-out ratios actual / predicted."""

    a: float
    b: float
    kind: str
    ratios: tuple[float, ...] = ()
    #: Median |error| / actual over the leave-one-out predictions.
    loo_error: float = math.inf
    count: int = 0

    def at(self, x: float) -> float:
        return max(0.0, self.a + self.b * x)


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return 1.0
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _fit(n: float, sx: float, sy: float, sxx: float, sxy: float) -> tuple[float, float] | None:
    """Least squares ``(a, b)`` from sums, or None when x does not vary or b < 0."""
    den = n * sxx - sx * sx
    if n < 2 or den <= 1e-12 * max(1.0, n * sxx):
        return None
    b = (n * sxy - sx * sy) / den
    if b < 0:
        return None
    return (sy - b * sx) / n, b


def fit_lines(
    pairs: Sequence[tuple[float, float]],
    sums: dict[str, float] | None = None,
    robust: bool = False,
) -> dict[str, Line]:
    """The models of y against x: ``mean`` and ``linear`` from ``sums`` (n, x, y, xx, xy of
    all history) when given, else from ``pairs``; with ``robust``, also ``median`` (of the
    samples in ``pairs``). Each is judged by leave-one-out on ``pairs``."""
    if sums is None or sums.get("n", 0) < len(pairs):
        sums = _pair_sums(pairs)
    n, sx, sy = sums["n"], sums["x"], sums["y"]
    sxx, sxy = sums["xx"], sums["xy"]
    out: dict[str, Line] = {}
    mean = sy / n if n else 0.0
    out["mean"] = _judged("mean", mean, 0.0, pairs, lambda x, y: _loo_mean(n, sy, y))
    line = _fit(n, sx, sy, sxx, sxy)
    if line is not None:
        a, b = line

        def loo(x: float, y: float) -> float | None:
            found = _fit(n - 1, sx - x, sy - y, sxx - x * x, sxy - x * y)
            if found is None:
                return _loo_mean(n, sy, y)
            return max(0.0, found[0] + found[1] * x)

        out["linear"] = _judged("linear", a, b, pairs, loo)
    if robust and len(pairs) >= MIN_SAMPLES:
        med = statistics.median(y for _, y in pairs)
        out["median"] = _judged("median", med, 0.0, pairs, lambda x, y: med)
    return out


def _pair_sums(pairs: Sequence[tuple[float, float]]) -> dict[str, float]:
    return {
        "n": float(len(pairs)),
        "x": sum(x for x, _ in pairs),
        "y": sum(y for _, y in pairs),
        "xx": sum(x * x for x, _ in pairs),
        "xy": sum(x * y for x, y in pairs),
    }


def _loo_mean(n: float, sy: float, y: float) -> float | None:
    return (sy - y) / (n - 1) if n > 1 else None


def _judged(
    kind: str,
    a: float,
    b: float,
    pairs: Sequence[tuple[float, float]],
    loo: Callable[[float, float], float | None],
) -> Line:
    ratios: list[float] = []
    errors: list[float] = []
    for x, y in pairs:
        guess = loo(x, y)
        if guess is None or guess <= 0 or y <= 0:
            continue
        ratios.append(y / guess)
        errors.append(abs(guess - y) / y)
    err = statistics.median(errors) if errors else math.inf
    return Line(a, b, kind, tuple(sorted(ratios)), err, len(pairs))


def best(lines: dict[str, Line]) -> Line:
    """The model with the lowest leave-one-out error; another model must beat the simpler
    ones by 5 % to be kept (simplest first: mean, median, linear)."""
    chosen = lines["mean"]
    for kind in ("median", "linear"):
        other = lines.get(kind)
        if other is not None and other.loo_error < chosen.loo_error * 0.95:
            chosen = other
    return chosen


@dataclass(frozen=True)
class FunctionModel:
    fn: str
    code: str
    exec: Line
    output: Line
    #: The other model of execution (for the comparison in ``docs/planning.md``).
    alternatives: dict[str, Line] = field(default_factory=dict)
    #: CPU share of the samples the model was fitted on (None: not stated).
    cpu: float | None = None
    #: Samples behind the model.
    count: int = 0
    #: Extra seconds of a function's first call in a process (imports, caches warming).
    first_call_s: float = 0.0
    #: Execution by the optimizations that acted (a sorted tuple of kinds; () for none),
    #: when the evidence says they differ (see :func:`_by_optimizations`); else empty, and
    #: ``exec`` stands for every task of the function.
    by_optimizations: dict[tuple[str, ...], Line] = field(default_factory=dict)


@dataclass
class Predictions:
    """Everything a simulation asks, at one SLA. Build with :meth:`from_history`."""

    functions: dict[tuple[str, str], FunctionModel]
    prep: Line
    #: ``prep`` of the first task of a new process (its functions loaded, imports run).
    cold_prep: Line
    gap: Line
    store: Line
    cold_start: tuple[float, ...]
    warm_start: tuple[float, ...]
    #: Cold start latencies by the number of other cold starts under way.
    cold_by_overlap: tuple[tuple[float, ...], ...]
    #: A freed slot's hand-over to the next invocation (see ``StartSample.handover_s``).
    handover: tuple[float, ...] = ()
    #: What an invocation takes besides its queueing and its start: made -> queued (the
    #: subDAG's store, the hand-off, the push) and ready -> its first task announced.
    dispatch: tuple[float, ...] = ()
    quantile: float | None = None
    defaults: Defaults = field(default_factory=Defaults)
    #: Sizes (memory MB, cpu) the models are for; None: whatever size was seen.
    memory_mb: int | None = None
    cpu: float | None = None
    #: Map chain widths by root name, from the workflow's latest run (see ``forecast``).
    widths: dict[str, int] = field(default_factory=dict)
    #: Set by :meth:`sampler`: every quantity is then drawn, not predicted.
    rng: Random | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_history(
        cls,
        view: HistoryView,
        sla: str | float = "average",
        memory_mb: int | None = None,
        cpu: float | None = None,
        defaults: Defaults | None = None,
    ) -> Predictions:
        q = parse_sla(sla)
        models = {
            key: m
            for key, f in view.functions.items()
            if (m := _function_model(f, memory_mb, cpu)) is not None
        }
        samples = list(view.samples())
        first = [
            (float(s.input_bytes), s.prep_s)
            for s in samples
            if s.gap_s is None and s.start_kind != "cold"
        ]
        cold = [(float(s.input_bytes), s.prep_s) for s in samples if s.start_kind == "cold"]
        later = [(float(s.input_bytes), s.gap_s) for s in samples if s.gap_s is not None]
        stores = [(float(s.output_bytes), s.store_s) for s in samples]
        return cls(
            models,
            best(fit_lines(first)) if first else Line(0, 0, "none"),
            best(fit_lines(cold)) if cold else Line(0, 0, "none"),
            best(fit_lines(later)) if later else Line(0, 0, "none"),
            best(fit_lines(stores)) if stores else Line(0, 0, "none"),
            _starts(view.starts, "cold"),
            _starts(view.starts, "warm"),
            _cold_by_overlap(view.starts),
            tuple(sorted(s.handover_s for s in view.starts if s.handover_s is not None)),
            _dispatch(view.starts),
            q,
            defaults or Defaults(),
            memory_mb,
            cpu,
        )

    # -- one quantity each -------------------------------------------------------------------

    def _scaled(self, line: Line, x: float) -> float:
        """The line at ``x`` times its SLA ratio, or (a sampler) times a ratio drawn from the
        same leave-one-out ratios: a bootstrap of the model's own errors."""
        base = line.at(x)
        if len(line.ratios) < MIN_SAMPLES:
            return base
        if self.rng is not None:
            return base * line.ratios[self.rng.randrange(len(line.ratios))]
        if self.quantile is None:
            return base
        ratio = _quantile(line.ratios, self.quantile)
        # A percentile from the median up is never more optimistic than the average.
        return base * (max(1.0, ratio) if self.quantile >= 0.5 else ratio)

    def known(self, fn: str, code: str) -> bool:
        return (fn, code) in self.functions

    def exec_s(
        self,
        fn: str,
        code: str,
        input_bytes: float,
        cpu: float | None = None,
        acted: tuple[str, ...] = (),
    ) -> float:
        """``acted``: the optimizations that act on the task (sorted kinds)."""
        m = self.functions.get((fn, code))
        if m is None:
            return self.defaults.exec_s
        t = self._scaled(m.by_optimizations.get(acted, m.exec), input_bytes)
        target = cpu if cpu is not None else self.cpu
        if target is not None:
            # Samples of no stated share ran unthrottled: a whole core to one thread.
            measured_at = m.cpu if m.cpu is not None else 1.0
            t *= min(1.0, measured_at) / min(1.0, target)
        return t

    def output_bytes(self, fn: str, code: str, input_bytes: float) -> float:
        m = self.functions.get((fn, code))
        if m is None:
            return float(self.defaults.output_bytes)
        return self._scaled(m.output, input_bytes)

    def first_call_s(self, fn: str, code: str) -> float:
        """What a function's first call in a process takes more than the others."""
        m = self.functions.get((fn, code))
        return 0.0 if m is None else m.first_call_s

    def prep_s(self, fetched_bytes: float, cold: bool = False) -> float:
        line = self.cold_prep if cold and self.cold_prep.kind != "none" else self.prep
        if line.kind == "none":
            return self.defaults.prep_s
        return self._scaled(line, fetched_bytes)

    def gap_s(self, fetched_bytes: float) -> float:
        if self.gap.kind == "none":
            return self.defaults.gap_s
        return self._scaled(self.gap, fetched_bytes)

    def store_s(self, output_bytes: float) -> float:
        if self.store.kind == "none":
            return self.defaults.store_s
        return self._scaled(self.store, output_bytes)

    def start_s(self, kind: str, overlap: int = 0) -> float:
        """A start's latency: ``cold`` by how many other cold starts are under way, ``warm``
        on an idle process, ``handover`` on a process that just ended an invocation."""
        values = self.cold_start if kind == "cold" else self.warm_start
        if kind == "cold" and self.cold_by_overlap:
            values = self.cold_by_overlap[min(overlap, len(self.cold_by_overlap) - 1)]
        if kind == "handover":
            values = self.handover or self.warm_start
        if not values:
            return self.defaults.cold_start_s if kind == "cold" else self.defaults.warm_start_s
        return self._pick(values)

    def dispatch_s(self) -> float:
        """An invocation's cost besides its wait for a slot and its start (see ``dispatch``)."""
        return self._pick(self.dispatch) if self.dispatch else self.defaults.dispatch_s

    def _pick(self, values: tuple[float, ...]) -> float:
        """The mean of sorted ``values``, at the SLA (never below the mean from the median
        up), or one of them drawn (a sampler)."""
        if self.rng is not None:
            return values[self.rng.randrange(len(values))]
        mean = statistics.fmean(values)
        if self.quantile is None:
            return mean
        found = _quantile(values, self.quantile)
        return max(mean, found) if self.quantile >= 0.5 else found

    def confidence(self, functions: Iterable[tuple[str, str]]) -> str:
        """``history`` (every function has enough samples), ``partial`` or ``none``."""
        fns = set(functions)
        counts = [self.functions[f].count if f in self.functions else 0 for f in fns]
        if counts and all(c >= MIN_SAMPLES for c in counts):
            return "history"
        return "partial" if any(counts) else "none"

    # -- sampling (Monte-Carlo) ---------------------------------------------------------------

    def sampler(self, seed: int) -> Predictions:
        """These predictions drawing one plausible value of each quantity per ask (seeded):
        one Monte-Carlo simulation's worth."""
        return replace(self, rng=Random(seed))


def _dispatch(starts: Iterable[StartSample]) -> tuple[float, ...]:
    """Each recorded invocation's latency less its queueing and its start."""
    return tuple(
        sorted(
            max(0.0, s.invoke_s - (s.queued_s or 0.0) - s.latency_s)
            for s in starts
            if s.invoke_s is not None
        )
    )


def _starts(starts: Iterable[StartSample], kind: str) -> tuple[float, ...]:
    return tuple(sorted(s.latency_s for s in starts if s.kind == kind))


def _cold_by_overlap(starts: Iterable[StartSample]) -> tuple[tuple[float, ...], ...]:
    """Cold start latencies by how many other cold starts were under way (0, 1, ...)."""
    by: dict[int, list[float]] = {}
    for s in starts:
        if s.kind == "cold":
            by.setdefault(s.overlap, []).append(s.latency_s)
    if not by:
        return ()
    top = max(by)
    out: list[tuple[float, ...]] = []
    for k in range(top + 1):  # a gap in the counts takes the one below
        out.append(tuple(sorted(by[k])) if k in by else out[-1] if out else ())
    return tuple(out)


def _function_model(
    f: FunctionHistory, memory_mb: int | None, cpu: float | None
) -> FunctionModel | None:
    """The model at the size asked for: from that size's samples alone only when they differ
    from the other sizes' by evidence (:func:`differs`); until then, and when sizes do not
    change execution, every size's history counts."""
    exact: list[SizeHistory] = []
    for key, sh in f.sizes.items():
        mb, c = parse_size(key)
        if (memory_mb is None or mb == memory_mb) and (cpu is None or c == cpu):
            exact.append(sh)
    everything = list(f.sizes.values())
    if not exact or len(exact) == len(everything):
        return _fitted(f, exact or everything)
    own, pooled = _fitted(f, exact), _fitted(f, everything)
    if own is None or pooled is None:
        return own or pooled
    here = [s.exec_s for sh in exact for s in sh.samples if not s.process_first]
    kept = {id(sh) for sh in exact}
    there = [
        s.exec_s
        for sh in everything
        if id(sh) not in kept
        for s in sh.samples
        if not s.process_first
    ]
    return own if differs(here, there) else pooled


def _fitted(f: FunctionHistory, chosen: list[SizeHistory]) -> FunctionModel | None:
    samples: list[TaskSample] = [s for sh in chosen for s in sh.samples]
    sums: dict[str, float] = {}
    for sh in chosen:
        for k, v in sh.sums.items():
            sums[k] = sums.get(k, 0.0) + v
    if not sums.get("n"):
        return None
    cpus = {s.cpu for s in samples}
    sample_cpu = cpus.pop() if len(cpus) == 1 else None
    # Execution is fitted on the calls after a function's first in its process; the first
    # calls' extra time (imports, warming caches) is a cost of its own (``first_call_s``).
    later = [s for s in samples if not s.process_first] or samples
    warm = dict(sums)
    first_n = sums.get("fn", 0.0)
    if 0 < first_n < sums["n"]:
        for k in ("n", "x", "y", "xx", "xy"):
            warm[k] = sums[k] - sums.get("f" + k, 0.0)
    exec_lines = fit_lines([(float(s.input_bytes), s.exec_s) for s in later], warm, robust=True)
    first_extra = 0.0
    if 0 < first_n < sums["n"]:
        first_mean = sums.get("fy", 0.0) / first_n
        first_extra = max(0.0, first_mean - best(exec_lines).at(sums.get("fx", 0.0) / first_n))
    out_sums = {
        "n": sums["n"],
        "x": sums["x"],
        "y": sums.get("o", 0.0),
        "xx": sums["xx"],
        "xy": sums.get("xo", 0.0),
    }
    out_lines = fit_lines(
        [(float(s.input_bytes), float(s.output_bytes)) for s in samples], out_sums
    )
    pooled = best(exec_lines)
    return FunctionModel(
        f.fn,
        f.code,
        pooled,
        best(out_lines),
        exec_lines,
        sample_cpu,
        int(sums["n"]),
        first_extra,
        _by_optimizations(later),
    )


def _by_optimizations(samples: Sequence[TaskSample]) -> dict[tuple[str, ...], Line]:
    """Separate models of execution for the tasks optimizations acted on and the others, when
    the evidence asks for it (:func:`differs`, between each group and the rest); otherwise
    one history serves optimized and plain runs alike (what the examples show for most
    functions: ``docs/planning.md``)."""
    groups: dict[tuple[str, ...], list[tuple[float, float]]] = {}
    for s in samples:
        groups.setdefault(tuple(sorted(s.optimizations)), []).append(
            (float(s.input_bytes), s.exec_s)
        )
    if len(groups) < 2:
        return {}
    apart = any(
        differs([y for _, y in g], [y for k, o in groups.items() if k != key for _, y in o])
        for key, g in groups.items()
    )
    if not apart:
        return {}
    return {key: best(fit_lines(g, robust=True)) for key, g in groups.items()}


#: How far apart two groups' medians must be to count (a 2 % shift is real with enough
#: samples, and changes no plan).
EFFECT = 0.10
#: The two-sided z a rank test must pass (p < 0.003).
Z_CRITICAL = 3.0


def differs(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether two groups of durations differ by evidence: a Mann-Whitney rank test (normal
    approximation, ties ranked by their mean) at :data:`Z_CRITICAL`, and medians at least
    :data:`EFFECT` apart. Written out here (a dozen lines) rather than adding SciPy for it."""
    n1, n2 = len(a), len(b)
    if n1 < MIN_SAMPLES or n2 < MIN_SAMPLES:
        return False
    ma, mb = statistics.median(a), statistics.median(b)
    if abs(ma - mb) < EFFECT * max(ma, mb):
        return False
    ordered = sorted([(v, 0) for v in a] + [(v, 1) for v in b])
    rank_a, i = 0.0, 0
    while i < len(ordered):
        j = i
        while j < len(ordered) and ordered[j][0] == ordered[i][0]:
            j += 1
        mean_rank = (i + 1 + j) / 2  # ranks i+1 .. j share their mean
        rank_a += mean_rank * sum(1 for k in range(i, j) if ordered[k][1] == 0)
        i = j
    u = rank_a - n1 * (n1 + 1) / 2
    spread = math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)
    return abs(u - n1 * n2 / 2) / spread > Z_CRITICAL
