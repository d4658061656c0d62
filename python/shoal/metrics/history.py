"""Run history: what earlier runs measured, kept bounded, read in two round trips.

Kept, per function identity (qualified name + code hash, :mod:`shoal.identity`) and worker
size:

- the latest :data:`SAMPLES_PER_SIZE` task samples (a bounded list, newest first);
- running sums over *every* sample ever recorded (count, input bytes, execution time, output
  bytes and their products), so old runs still count after their samples were trimmed: the
  predictors fit their lines on the sums and judge their spread on the samples.

Per workflow identity, the last :data:`RUNS_PER_WORKFLOW` run summaries, and for the last
:data:`REPLAYS_PER_WORKFLOW` runs their graph and samples (``shoal what-if`` replays them).
Across all functions, the latest :data:`STARTS` worker starts (cold and warm latencies).

The client records a run once it ended (:meth:`History.record`, from the run's events: the
records survive any worker's death, since each task's record is written with its completion).
Planning reads a graph's history with :meth:`History.load`: one round trip for the sums of
every function of the graph, the workflow's summaries and the starts, one more for the samples
at the sizes found. Nothing lists keys by pattern.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
import zstandard

from .. import _core
from ..storage import keys
from .records import RunRecord, RunSummary, StartSample, TaskSample
from .stores import HistoryStore, Read, Write

SAMPLES_PER_SIZE = 500
RUNS_PER_WORKFLOW = 50
REPLAYS_PER_WORKFLOW = 10
STARTS = 2000
#: A run whose graph encodes larger than this keeps no replay.
REPLAY_LIMIT = 32 * 1024 * 1024
#: How long a replay lives on a Redis store at most (it holds the graph, and with it the
#: run's inline arguments): a week, as the run's own keys do.
REPLAY_TTL_S = 7 * 24 * 3600

#: The running sums kept per function and size (x: input bytes, y: execution seconds, o:
#: output bytes; the ``f`` sums again over the function's first calls in a process alone).
SUMS = ("n", "x", "y", "xx", "xy", "yy", "o", "xo", "oo", "fn", "fx", "fy", "fxx", "fxy")


def function_key(fn: str, code: str) -> str:
    return _core.hash16(f"{fn}@{code}".encode()).hex()


def size_key(memory_mb: int | None, cpu: float | None) -> str:
    """``<MB>m<cpu>c``; 0 for a dimension with no limit."""
    return f"{memory_mb or 0}m{cpu or 0:g}c"


def parse_size(key: str) -> tuple[int | None, float | None]:
    mb, _, rest = key.partition("m")
    cpu = float(rest.removesuffix("c") or 0)
    return (int(mb) or None), (cpu or None)


@dataclass
class SizeHistory:
    sums: dict[str, float] = field(default_factory=dict)
    samples: list[TaskSample] = field(default_factory=list)

    @property
    def count(self) -> int:
        return int(self.sums.get("n", 0))


@dataclass
class FunctionHistory:
    fn: str
    code: str
    sizes: dict[str, SizeHistory] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return sum(s.count for s in self.sizes.values())


@dataclass
class HistoryView:
    """What planning knows: per function identity, its history; the workflow's last runs."""

    functions: dict[tuple[str, str], FunctionHistory] = field(default_factory=dict)
    starts: list[StartSample] = field(default_factory=list)
    runs: list[RunSummary] = field(default_factory=list)

    def samples(self) -> Iterable[TaskSample]:
        for f in self.functions.values():
            for s in f.sizes.values():
                yield from s.samples


@dataclass
class Replay:
    """A recorded run: its graph, what it measured per task, and what its plan predicted."""

    summary: RunSummary
    graph: bytes
    samples: dict[int, TaskSample]
    predicted: dict[int, tuple[float, float]]


class History:
    def __init__(self, store: HistoryStore) -> None:
        self.store = store

    # -- writing -----------------------------------------------------------------------------

    async def record(
        self,
        run: RunRecord,
        graph: bytes | None = None,
        predicted: dict[int, tuple[float, float]] | None = None,
    ) -> None:
        """Adds one ended run (two round trips: which replays drop out, then the batch)."""
        s = run.summary
        w = Write()
        by_size: dict[tuple[str, str], list[TaskSample]] = {}
        names: dict[str, str] = {}
        for sample in run.samples:
            fk = function_key(sample.fn, sample.code)
            names[fk] = f"{sample.fn}@{sample.code}"
            by_size.setdefault((fk, size_key(sample.memory_mb, sample.cpu)), []).append(sample)
        for (fk, size), samples in by_size.items():
            packed = [msgpack.packb(x.pack(), use_bin_type=True) for x in samples]
            w.pushes.append((keys.history_samples(fk, size), packed, SAMPLES_PER_SIZE))
            for name, amount in _sums(samples).items():
                w.incrs.append((keys.history_aggregates(fk), f"{size}|{name}", amount))
        for fk, label in names.items():
            w.hsets.append((keys.history_functions(), fk, label.encode()))
        starts = [msgpack.packb(x.pack(), use_bin_type=True) for x in run.starts]
        w.pushes.append((keys.history_starts(), starts, STARTS))
        if s.workflow:
            runs_key = keys.history_runs(s.workflow)
            w.pushes.append((runs_key, [msgpack.packb(s.pack())], RUNS_PER_WORKFLOW))
            w.hsets.append((keys.history_workflows(), s.workflow, f"{s.tasks}".encode()))
            if graph is not None and len(graph) <= REPLAY_LIMIT:
                blob = _replay_blob(run, graph, predicted)
                w.sets.append((keys.history_run(s.run_id), blob, REPLAY_TTL_S))
                known = await self.store.read(Read(lists=[(runs_key, RUNS_PER_WORKFLOW)]))
                ids = [o.run_id for o in _summaries(known.lists[runs_key])]
                # This run becomes the newest: those past the bound lose their replay.
                w.deletes += [keys.history_run(r) for r in ids[REPLAYS_PER_WORKFLOW - 1 :]]
        await self.store.write(w)

    # -- reading -----------------------------------------------------------------------------

    async def load(
        self, functions: Sequence[tuple[str, str]], workflow: str | None = None
    ) -> HistoryView:
        """The history of ``functions`` (name, code) and of ``workflow``: two round trips."""
        fks = {function_key(fn, code): (fn, code) for fn, code in functions}
        first = Read(
            hashes=[keys.history_aggregates(fk) for fk in fks],
            lists=[(keys.history_starts(), STARTS)],
        )
        if workflow:
            first.lists.append((keys.history_runs(workflow), RUNS_PER_WORKFLOW))
        got = await self.store.read(first)
        view = HistoryView()
        for fk, (fn, code) in fks.items():
            sums = got.hashes.get(keys.history_aggregates(fk), {})
            if sums:
                view.functions[(fn, code)] = _function(fn, code, sums)
        view.starts = _starts(got.lists.get(keys.history_starts(), []))
        if workflow:
            view.runs = _summaries(got.lists.get(keys.history_runs(workflow), []))
        second = Read(
            lists=[
                (keys.history_samples(function_key(f.fn, f.code), size), SAMPLES_PER_SIZE)
                for f in view.functions.values()
                for size in f.sizes
            ]
        )
        if second.lists:
            more = await self.store.read(second)
            for f in view.functions.values():
                fk = function_key(f.fn, f.code)
                for size, sh in f.sizes.items():
                    raw = more.lists.get(keys.history_samples(fk, size), [])
                    sh.samples = _samples(f.fn, f.code, raw)
        return view

    async def listing(self) -> list[FunctionHistory]:
        """Every function with history and its sums per size (``shoal history``)."""
        names = (await self.store.read(Read(hashes=[keys.history_functions()]))).hashes
        labels = {fk: v.decode() for fk, v in names.get(keys.history_functions(), {}).items()}
        if not labels:
            return []
        got = await self.store.read(Read(hashes=[keys.history_aggregates(fk) for fk in labels]))
        out = []
        for fk, label in labels.items():
            fn, _, code = label.rpartition("@")
            out.append(_function(fn, code, got.hashes.get(keys.history_aggregates(fk), {})))
        return sorted(out, key=lambda f: f.fn)

    async def workflow_runs(self, workflow: str) -> list[RunSummary]:
        key = keys.history_runs(workflow)
        got = await self.store.read(Read(lists=[(key, RUNS_PER_WORKFLOW)]))
        return [x for b in got.lists.get(key, []) if (x := RunSummary.unpack(msgpack.unpackb(b)))]

    async def workflows(self) -> dict[str, int]:
        got = await self.store.read(Read(hashes=[keys.history_workflows()]))
        return {k: int(v) for k, v in got.hashes.get(keys.history_workflows(), {}).items()}

    async def replay(self, run_id: str) -> Replay | None:
        key = keys.history_run(run_id)
        blob = (await self.store.read(Read(strings=[key]))).strings.get(key)
        return None if blob is None else _replay_of(blob)


def _starts(raw: Iterable[bytes]) -> list[StartSample]:
    found = (StartSample.unpack(msgpack.unpackb(b)) for b in raw)
    return [x for x in found if x is not None]


def _summaries(raw: Iterable[bytes]) -> list[RunSummary]:
    found = (RunSummary.unpack(msgpack.unpackb(b)) for b in raw)
    return [x for x in found if x is not None]


def _samples(fn: str, code: str, raw: Iterable[bytes]) -> list[TaskSample]:
    found = (TaskSample.unpack(fn, code, msgpack.unpackb(b)) for b in raw)
    return [x for x in found if x is not None]


def _sums(samples: Iterable[TaskSample]) -> dict[str, float]:
    out = dict.fromkeys(SUMS, 0.0)
    for s in samples:
        x, y, o = float(s.input_bytes), s.exec_s, float(s.output_bytes)
        out["n"] += 1
        out["x"] += x
        out["y"] += y
        out["xx"] += x * x
        out["xy"] += x * y
        out["yy"] += y * y
        out["o"] += o
        out["xo"] += x * o
        if s.process_first:
            out["fn"] += 1
            out["fx"] += x
            out["fy"] += y
            out["fxx"] += x * x
            out["fxy"] += x * y
        out["oo"] += o * o
    return out


def _function(fn: str, code: str, raw: dict[str, bytes]) -> FunctionHistory:
    f = FunctionHistory(fn, code)
    for name, value in raw.items():
        size, _, which = name.partition("|")
        f.sizes.setdefault(size, SizeHistory()).sums[which] = float(value)
    return f


def _replay_blob(
    run: RunRecord, graph: bytes, predicted: dict[int, tuple[float, float]] | None
) -> bytes:
    body: dict[str, Any] = {
        "summary": run.summary.pack(),
        "graph": graph,
        "samples": [[t, s.fn, s.code, s.pack()] for t, s in run.by_task.items()],
        "predicted": [[t, a, b] for t, (a, b) in (predicted or {}).items()],
    }
    return bytes(zstandard.ZstdCompressor(level=3).compress(msgpack.packb(body, use_bin_type=True)))


def _replay_of(blob: bytes) -> Replay | None:
    raw = zstandard.ZstdDecompressor().decompress(blob, max_output_size=8 * REPLAY_LIMIT)
    body = msgpack.unpackb(raw, strict_map_key=False)
    summary = RunSummary.unpack(body["summary"])
    if summary is None:
        return None
    samples = {}
    for t, fn, code, raw in body["samples"]:
        s = TaskSample.unpack(fn, code, raw)
        if s is not None:
            samples[t] = s
    predicted = {t: (a, b) for t, a, b in body["predicted"]}
    return Replay(summary, body["graph"], samples, predicted)
