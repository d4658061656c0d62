"""Run history on each store: what goes in comes back, bounded, in two round trips."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from shoal.metrics import history as hist
from shoal.metrics.history import History, function_key, size_key
from shoal.metrics.records import RunRecord, RunSummary, StartSample, TaskSample
from shoal.metrics.stores import (
    DirectoryHistoryStore,
    HistoryStore,
    MemoryHistoryStore,
    RedisHistoryStore,
)


@pytest.fixture(params=["memory", "directory", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HistoryStore]:
    if request.param == "memory":
        yield MemoryHistoryStore()
    elif request.param == "directory":
        yield DirectoryHistoryStore(tmp_path / "history")
    else:
        url = request.getfixturevalue("redis_url")
        client = redis.Redis.from_url(url)

        def forget() -> None:  # the history's keys only: the server is the whole session's
            for key in client.scan_iter("shoal:hist:*"):
                client.delete(key)

        forget()
        store = RedisHistoryStore.from_url(url)
        yield store
        run(store.close())
        forget()
        client.close()


def sample(fn: str, i: int, *, mb: int | None = None) -> TaskSample:
    return TaskSample(
        fn=fn,
        code="c0de",
        task=i,
        attempt=1,
        worker="h:1:0",
        memory_mb=mb,
        cpu=None,
        input_bytes=100 * i,
        inputs_fetched=1,
        inputs_local=0,
        prep_s=0.001,
        fetch_s=0.0005,
        exec_s=0.01 + 0.001 * i,
        output_bytes=10 * i,
        store_s=0.0007,
        gap_s=None if i == 0 else 0.0004,
    )


def record(run: int, fns: list[str], per_fn: int = 3, mb: int | None = None) -> RunRecord:
    samples = [sample(fn, i, mb=mb) for fn in fns for i in range(per_fn)]
    summary = RunSummary(
        run_id=f"run{run}",
        workflow="wf",
        state="completed",
        tasks=len(samples),
        planner="",
        submitted_at=float(run),
        makespan_s=1.0 + run,
        predicted_makespan_s=None,
        workers=1,
        cold_starts=1,
        warm_starts=0,
        gb_s=1.0,
        busy_gb_s=0.5,
        cpu_s=1.0,
        busy_cpu_s=0.5,
    )
    starts = [StartSample("cold", 0.2, 0.19, mb, 100, 0.001)]
    return RunRecord(summary, samples, starts, {s.task: s for s in samples})


_loop: list[asyncio.AbstractEventLoop] = []


@pytest.fixture(autouse=True)
def one_loop() -> Iterator[None]:
    """One event loop per test: the Redis store's connections belong to it."""
    loop = asyncio.new_event_loop()
    _loop.append(loop)
    yield
    _loop.pop()
    loop.close()


def run(coro: Any) -> Any:
    return _loop[-1].run_until_complete(coro)


def test_what_is_recorded_comes_back_with_its_sums(store: HistoryStore) -> None:
    h = History(store)
    for r in range(3):
        run(h.record(record(r, ["m:f", "m:g"]), graph=b"graph", predicted={0: (0.0, 1.0)}))
    view = run(h.load([("m:f", "c0de"), ("m:g", "c0de"), ("m:unknown", "x")], "wf"))
    assert set(view.functions) == {("m:f", "c0de"), ("m:g", "c0de")}
    f = view.functions[("m:f", "c0de")].sizes[size_key(None, None)]
    assert f.count == 9 and len(f.samples) == 9
    assert f.sums["y"] == pytest.approx(3 * sum(0.01 + 0.001 * i for i in range(3)))
    assert f.sums["x"] == pytest.approx(3 * 300)
    assert sorted(s.exec_s for s in f.samples) == sorted([0.01, 0.011, 0.012] * 3)
    gaps = [s.gap_s for s in f.samples]
    assert gaps.count(None) == 3 and sorted(g for g in gaps if g is not None) == [0.0004] * 6
    assert [r.run_id for r in view.runs] == ["run2", "run1", "run0"]
    assert len(view.starts) == 3 and view.starts[0].kind == "cold"
    replay = run(h.replay("run1"))
    assert replay is not None and replay.graph == b"graph" and replay.predicted == {0: (0.0, 1.0)}
    assert replay.samples[2].exec_s == pytest.approx(0.012)
    listed = run(h.listing())
    assert [f.fn for f in listed] == ["m:f", "m:g"] and listed[0].count == 9


def test_sizes_are_kept_apart(store: HistoryStore) -> None:
    h = History(store)
    run(h.record(record(0, ["m:f"], mb=512)))
    run(h.record(record(1, ["m:f"], mb=1024)))
    view = run(h.load([("m:f", "c0de")]))
    sizes = view.functions[("m:f", "c0de")].sizes
    assert set(sizes) == {size_key(512, None), size_key(1024, None)}
    assert all(s.count == 3 for s in sizes.values())


def test_reading_a_thousand_functions_takes_two_round_trips(store: HistoryStore) -> None:
    h = History(store)
    fns = [f"m:f{i}" for i in range(1000)]
    run(h.record(record(0, fns, per_fn=1)))
    before = store.round_trips
    view = run(h.load([(fn, "c0de") for fn in fns], "wf"))
    assert store.round_trips - before == 2
    assert len(view.functions) == 1000


def _footprint(store: HistoryStore) -> tuple[int, int]:
    """(keys, bytes) the history holds."""
    if isinstance(store, RedisHistoryStore):
        client = store._r

        async def count() -> tuple[int, int]:
            names = [k async for k in client.scan_iter("shoal:hist:*")]
            sizes = [await client.memory_usage(k) or 0 for k in names]
            return len(names), sum(sizes)

        return run(count())  # type: ignore[no-any-return]
    if isinstance(store, DirectoryHistoryStore):
        files = list(store.path.glob("*.mp"))
        return len(files), sum(f.stat().st_size for f in files)
    assert isinstance(store, MemoryHistoryStore)
    t = store.tables
    size = sum(len(b) for v in t.lists.values() for b in v)
    size += sum(len(b) for v in t.hashes.values() for b in v.values())
    size += sum(len(v) for v in t.strings.values())
    return store.key_count(), size


def test_history_stays_bounded(store: HistoryStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hist, "SAMPLES_PER_SIZE", 5)
    monkeypatch.setattr(hist, "RUNS_PER_WORKFLOW", 4)
    monkeypatch.setattr(hist, "REPLAYS_PER_WORKFLOW", 2)
    monkeypatch.setattr(hist, "STARTS", 3)
    h = History(store)
    footprints = []
    for r in range(40):
        run(h.record(record(r, ["m:f"]), graph=b"g" * 100))
        footprints.append(_footprint(store))
    # After the bounds filled up (a few runs), keys and bytes stay flat (a running sum may
    # take a few more digits).
    keys_after = {k for k, _ in footprints[6:]}
    assert len(keys_after) == 1
    sizes_after = [b for _, b in footprints[6:]]
    assert max(sizes_after) - min(sizes_after) <= 0.05 * max(sizes_after) + 64
    view = run(h.load([("m:f", "c0de")], "wf"))
    f = view.functions[("m:f", "c0de")].sizes[size_key(None, None)]
    assert len(f.samples) == 5 and f.count == 120  # the sums count every run
    assert [x.run_id for x in view.runs] == ["run39", "run38", "run37", "run36"]
    assert run(h.replay("run38")) is not None and run(h.replay("run37")) is None
    assert function_key("m:f", "c0de") != function_key("m:f", "c0df")


def test_a_torn_file_reads_as_absent(tmp_path: Path) -> None:
    store = DirectoryHistoryStore(tmp_path)
    h = History(store)
    run(h.record(record(0, ["m:f"])))
    for f in tmp_path.glob("*.mp"):
        f.write_bytes(f.read_bytes()[:3])
    assert run(h.load([("m:f", "c0de")])).functions == {}
    run(h.record(record(1, ["m:f"])))  # and a later run starts it again
    assert run(h.load([("m:f", "c0de")])).functions[("m:f", "c0de")].count == 3
