"""Upload strategies: parsing, the worker's buffer, and what each loses or keeps."""

from __future__ import annotations

from typing import Any

import pytest

import shoal
from shoal.config import Settings
from shoal.errors import ConfigError
from shoal.events import TaskCompleted, TaskMetrics, decode, encode
from shoal.metrics.records import run_record
from shoal.metrics.upload import METRIC_FIELDS, MetricsBuffer, Upload, parse_upload, split_fields


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("task", Upload("task")),
        ("EXIT", Upload("exit")),
        ("off", Upload("off")),
        ("every:2", Upload("every", 2.0)),
        ("every:0.5s", Upload("every", 0.5)),
        ("count:100", Upload("count", 100.0)),
    ],
)
def test_strategies_parse(text: str, want: Upload) -> None:
    assert parse_upload(text) == want
    assert parse_upload(str(want)) == want


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("sometimes", "must be task, exit"),
        ("every", "needs a number"),
        ("every:-1", "positive number"),
        ("every:nan", "positive number"),
        ("count:1.5", "needs a number"),
        ("count:0", "positive number"),
        ("task:3", "takes no argument"),
    ],
)
def test_bad_strategies_are_refused_with_what_is_accepted(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_upload(text)


def test_the_setting_is_checked_and_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigError, match="setting metrics .*SHOAL_METRICS"):
        Settings(metrics="hourly")
    monkeypatch.setenv("SHOAL_METRICS", "count:7")
    assert Settings.from_env().metrics == "count:7"
    assert Settings.from_env().to_env()["SHOAL_METRICS"] == "count:7"


def completed(task: int) -> dict[str, str]:
    return encode(
        TaskCompleted(
            task=task,
            name="f",
            fn="m:f",
            fn_hash="ab",
            worker="h:1:0",
            start=1.0,
            end=2.0,
            input_bytes=10,
            inputs_fetched=1,
            fetch_s=0.5,
            output_bytes=20,
            encode_s=0.1,
            optimizations=("preload",),
        )
    )


def test_split_fields_keeps_control_and_moves_metrics() -> None:
    control, record = split_fields(completed(3))
    assert not set(control) & set(METRIC_FIELDS)
    assert decode(control).task == 3 and decode(control).end == 2.0  # type: ignore[attr-defined]
    m = decode(record)
    assert isinstance(m, TaskMetrics) and m.fn == "m:f" and m.optimizations == ("preload",)
    assert m.output_bytes == 20 and m.task == 3 and m.worker == "h:1:0"


def sent(buffer: MetricsBuffer, task: int, first: bool = True) -> dict[str, str]:
    """What a worker does per task: split the fields, send the completion, confirm it."""
    control = buffer.completed(completed(task))
    buffer.confirm(first)
    return control


def test_the_buffer_holds_by_strategy() -> None:
    assert MetricsBuffer(Upload("task")).completed(completed(1)) == completed(1)
    off = MetricsBuffer(Upload("off"))
    assert "fn" not in sent(off, 1) and off.pending == []
    count = MetricsBuffer(Upload("count", 3))
    for i in range(2):
        sent(count, i)
        assert not count.due()
    sent(count, 99, first=False)  # a repeat: the store kept another worker's completion
    assert not count.due() and len(count.pending) == 2
    sent(count, 2)
    assert count.due()
    taken = count.take()
    assert [decode(r).task for r in taken] == [0, 1, 2] and not count.due()  # type: ignore[attr-defined]
    count.put_back(taken[1:])  # an append that failed: those go first next time
    sent(count, 3)
    assert [decode(r).task for r in count.take()] == [1, 2, 3]  # type: ignore[attr-defined]
    now = [100.0]
    every = MetricsBuffer(Upload("every", 2), clock=lambda: now[0])
    sent(every, 1)
    assert not every.due()
    now[0] += 2.5
    assert every.due() and len(every.take()) == 1
    exit_ = MetricsBuffer(Upload("exit"), clock=lambda: now[0])
    sent(exit_, 1)
    now[0] += 1e6
    assert not exit_.due() and len(exit_.take()) == 1  # only the invocation's end takes it


@shoal.task
def leaf(i: int) -> int:
    return i + 1


@shoal.task
def join(*xs: int) -> int:
    return sum(xs)


@pytest.mark.parametrize("strategy", ["task", "exit", "every:0.01", "count:3", "off"])
def test_every_strategy_records_every_task_unless_off(scheduler: str, strategy: str) -> None:
    settings = Settings(metrics=strategy)
    node = join(*[join(*[leaf(10 * i + j) for j in range(5)]) for i in range(4)])
    if scheduler == "processes":
        session = shoal.Session(progress=False, metrics_url="memory://", settings=settings)
    else:
        from shoal.backends import InProcess
        from shoal.storage.memory import MemoryStorage

        session = shoal.Session(
            backend=InProcess(threads=scheduler == "threads"),
            storage=MemoryStorage(),
            settings=settings,
            metrics_url="memory://",
        )
    with session as s:
        run = s.submit(node)
        assert run.result() == (sum(10 * i + j + 1 for i in range(4) for j in range(5)),)
        history = s.history
        assert history is not None
        counts: dict[str, Any] = {
            f.fn.rsplit(":", 1)[1]: f.count for f in s._run(history.listing())
        }
        entries = s._run(s.storage.events_range(run.id))
    if strategy == "off":
        assert counts == {}
        return
    assert counts == {"leaf": 20, "join": 5}
    evs = [decode(f, i) for i, f in entries]
    record = run_record(run.id, evs)
    assert {x.task for x in record.samples} == {
        e.task for e in evs if isinstance(e, TaskCompleted) and e.width is None
    }
    moved = any(isinstance(e, TaskMetrics) for e in evs)
    assert moved == (strategy not in ("task", "off"))
    if strategy == "count:3":  # uploaded as they queued up, not only at the invocations' end
        ended = next(i for i, e in enumerate(evs) if e.type == "RUN_COMPLETED")
        first = next(i for i, e in enumerate(evs) if isinstance(e, TaskMetrics))
        assert first < ended


def test_a_history_url_that_is_not_understood_is_refused_when_the_session_is_made() -> None:
    with pytest.raises(ConfigError, match="metrics_url 'bogus://x' is not understood"):
        shoal.Session(metrics_url="bogus://x")
    with pytest.raises(ConfigError, match="metrics_url"):
        shoal.Session(metrics_url="redis://")  # names no host
    with pytest.raises(ConfigError, match="file:// needs a path"):
        shoal.Session(metrics_url="file://")
