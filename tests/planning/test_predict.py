"""Predictions from history: the models, the SLA's direction, defaults, and a real run."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

import shoal
from shoal.errors import UsageError
from shoal.metrics.history import FunctionHistory, HistoryView, SizeHistory, _sums, size_key
from shoal.metrics.records import StartSample, TaskSample
from shoal.planning.predict import Predictions, best, differs, fit_lines, parse_sla


def sample(x: int, y: float, out: int = 10, gap: float | None = 0.0004) -> TaskSample:
    return TaskSample(
        "m:f", "c", 0, 1, "w", None, None, x, 1, 0, 0.001, 0.0, y, out, 0.0007, gap_s=gap
    )


def view_of(samples: list[TaskSample], starts: list[StartSample] | None = None) -> HistoryView:
    sh = SizeHistory(_sums(samples), samples)
    return HistoryView(
        {("m:f", "c"): FunctionHistory("m:f", "c", {size_key(None, None): sh})}, starts or []
    )


def test_a_line_is_kept_when_time_grows_with_input_and_the_mean_when_it_does_not() -> None:
    rng = random.Random(1)
    linear = [
        (float(x), 0.002 + 1e-6 * x * rng.uniform(0.97, 1.03)) for x in range(1000, 50000, 997)
    ]
    lines = fit_lines(linear)
    chosen = best(lines)
    assert chosen.kind == "linear"
    assert chosen.b == pytest.approx(1e-6, rel=0.05) and chosen.loo_error < 0.05
    flat = [(float(x), 0.01 * rng.uniform(0.9, 1.1)) for x in range(1000, 50000, 997)]
    assert best(fit_lines(flat)).kind == "mean"
    # A negative slope is not physical: the mean stands in.
    falling = [(float(x), 1.0 - 1e-5 * x) for x in range(0, 50000, 1000)]
    assert set(fit_lines(falling)) == {"mean"}


@given(st.lists(st.floats(0.001, 1.0), min_size=5, max_size=40))
def test_a_percentile_sla_is_never_below_the_average_of_any_quantity(ys: list[float]) -> None:
    samples = [sample(1000 * i, y, out=10 + i) for i, y in enumerate(ys)]
    starts = [StartSample("cold", 0.1 + y, None, None, 0, 0.0) for y in ys]
    starts += [StartSample("warm", y / 10, None, None, 0, 0.0) for y in ys]
    view = view_of(samples, starts)
    avg = Predictions.from_history(view, "average")
    p95 = Predictions.from_history(view, "p95")
    p50 = Predictions.from_history(view, "p50")
    x = 5000.0
    eps = 1e-12
    for kind in ("cold", "warm"):
        assert p95.start_s(kind) >= avg.start_s(kind) - eps
        assert p95.start_s(kind) >= p50.start_s(kind) - eps
    assert p95.exec_s("m:f", "c", x) >= avg.exec_s("m:f", "c", x) - eps
    assert p95.exec_s("m:f", "c", x) >= p50.exec_s("m:f", "c", x) - eps
    assert p95.store_s(100) >= avg.store_s(100) - eps
    assert p95.gap_s(100) >= avg.gap_s(100) - eps
    assert p95.output_bytes("m:f", "c", x) >= avg.output_bytes("m:f", "c", x) - 1e-9


def test_p95_covers_95_percent_of_the_samples() -> None:
    rng = random.Random(7)
    ys = [rng.lognormvariate(-4, 0.3) for _ in range(400)]
    p95 = Predictions.from_history(view_of([sample(0, y) for y in ys]), "p95")
    bound = p95.exec_s("m:f", "c", 0)
    covered = sum(y <= bound for y in ys) / len(ys)
    assert 0.93 <= covered <= 0.97


def acted_sample(y: float, acted: tuple[str, ...]) -> TaskSample:
    found = sample(1000, y)
    found.optimizations = acted
    return found


def test_optimized_tasks_get_a_model_of_their_own_only_when_the_evidence_says_so() -> None:
    rng = random.Random(3)
    plain = [acted_sample(0.010 * rng.uniform(0.9, 1.1), ()) for _ in range(60)]
    twice = [acted_sample(0.020 * rng.uniform(0.9, 1.1), ("cluster",)) for _ in range(60)]
    p = Predictions.from_history(view_of(plain + twice))
    assert set(p.functions["m:f", "c"].by_optimizations) == {(), ("cluster",)}
    assert p.exec_s("m:f", "c", 1000, acted=("cluster",)) == pytest.approx(0.020, rel=0.05)
    assert p.exec_s("m:f", "c", 1000) == pytest.approx(0.010, rel=0.05)
    # The same distribution with and without: one history serves both.
    same = [acted_sample(0.010 * rng.uniform(0.9, 1.1), ("cluster",)) for _ in range(60)]
    q = Predictions.from_history(view_of(plain + same))
    assert q.functions["m:f", "c"].by_optimizations == {}
    both = q.exec_s("m:f", "c", 1000, acted=("cluster",))
    assert both == q.exec_s("m:f", "c", 1000) == pytest.approx(0.010, rel=0.05)
    # Too few optimized samples to judge: pooled as well.
    few = Predictions.from_history(view_of(plain + twice[:2]))
    assert few.functions["m:f", "c"].by_optimizations == {}


def test_two_groups_differ_only_with_a_real_shift_and_enough_samples() -> None:
    rng = random.Random(11)
    base = [rng.lognormvariate(-7, 0.3) for _ in range(300)]
    same = [rng.lognormvariate(-7, 0.3) for _ in range(300)]
    assert not differs(base, same)
    assert differs(base, [2 * y for y in same])
    # Significant with this many samples, but 3 % changes no plan.
    assert not differs(base * 20, [1.03 * y for y in base * 20])
    assert not differs(base, [2 * y for y in same[:2]])  # too few to judge
    assert not differs([0.001] * 50, [0.001] * 50)  # ties throughout


@given(st.lists(st.floats(1e-6, 1.0), min_size=3, max_size=60), st.floats(1.5, 4.0))
def test_a_group_never_differs_from_itself_and_a_scaled_copy_of_a_spread_group_does(
    ys: list[float], factor: float
) -> None:
    assert not differs(ys, list(ys))
    if len(ys) >= 20 and len(set(ys)) == len(ys):
        assert differs(ys, [factor * y for y in ys]) == (differs([factor * y for y in ys], ys))


def sized_sample(y: float, memory_mb: int) -> TaskSample:
    found = sample(1000, y)
    found.memory_mb = memory_mb
    return found


def two_sizes(a: list[TaskSample], b: list[TaskSample]) -> HistoryView:
    sizes = {size_key(512, None): SizeHistory(_sums(a), a)}
    sizes[size_key(1536, None)] = SizeHistory(_sums(b), b)
    return HistoryView({("m:f", "c"): FunctionHistory("m:f", "c", sizes)}, [])


def test_a_size_gets_its_own_model_only_when_its_samples_say_it_runs_differently() -> None:
    rng = random.Random(5)
    small = [sized_sample(0.010 * rng.uniform(0.8, 1.2), 512) for _ in range(150)]
    # One run at a new size that runs as fast: every size's samples count.
    alike = [sized_sample(0.010 * rng.uniform(0.8, 1.2), 1536) for _ in range(20)]
    p = Predictions.from_history(two_sizes(small, alike), memory_mb=1536)
    assert p.functions["m:f", "c"].count == 170
    # A size that runs twice as fast: its own samples.
    faster = [sized_sample(0.005 * rng.uniform(0.8, 1.2), 1536) for _ in range(20)]
    q = Predictions.from_history(two_sizes(small, faster), memory_mb=1536)
    assert q.functions["m:f", "c"].count == 20
    assert q.exec_s("m:f", "c", 1000) == pytest.approx(0.005, rel=0.1)


def test_without_history_defaults_stand_in_and_say_so() -> None:
    p = Predictions.from_history(HistoryView())
    assert p.exec_s("m:g", "x", 100) == p.defaults.exec_s
    assert p.start_s("cold") == p.defaults.cold_start_s
    assert p.confidence([("m:g", "x")]) == "none"
    some = Predictions.from_history(view_of([sample(0, 0.1) for _ in range(5)]))
    assert some.confidence([("m:f", "c")]) == "history"
    assert some.confidence([("m:f", "c"), ("m:g", "x")]) == "partial"


@pytest.mark.parametrize("bad", ["p0", "p100", "fast", "", -5, True, None, 150.0])
def test_a_bad_sla_is_refused_by_name(bad: object) -> None:
    with pytest.raises(UsageError, match="sla"):
        parse_sla(bad)  # type: ignore[arg-type]


def test_sla_spellings() -> None:
    assert parse_sla("average") is None and parse_sla("Mean") is None
    assert parse_sla("p95") == parse_sla("95") == parse_sla(95) == parse_sla(0.95) == 0.95
    assert parse_sla("p1") == 0.01 and parse_sla("p99.9") == pytest.approx(0.999)


def test_one_slow_start_does_not_make_a_percentile_optimistic() -> None:
    starts = [StartSample("cold", 0.1, None, None, 0, 0.0) for _ in range(39)]
    starts.append(StartSample("cold", 10.0, None, None, 0, 0.0))
    view = view_of([sample(0, 0.01) for _ in range(5)], starts)
    avg = Predictions.from_history(view, "average").start_s("cold")
    assert avg == pytest.approx((39 * 0.1 + 10) / 40)
    assert Predictions.from_history(view, "p95").start_s("cold") >= avg


@shoal.task
def leaf(i: int) -> int:
    return i * 3


@shoal.task
def pair(x: int, y: int) -> int:
    return x + y


def tree(n: int) -> shoal.Node[int]:
    level = [leaf(i) for i in range(n)]
    while len(level) > 1:
        level = [pair(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def test_a_session_records_its_runs_and_its_simulations_read_them(scheduler: str) -> None:
    if scheduler == "processes":
        session = shoal.Session(progress=False, metrics_url="memory://")
    else:
        session = shoal.Session.for_scheduler(scheduler)
        session._metrics_url = "memory://"
    with session as s:
        first = s.simulate(tree(16))
        assert first.confidence == "none" and first.makespan_s is not None
        for _ in range(3):
            assert s.compute(tree(16)) == (sum(3 * i for i in range(16)),)
        plan = s.simulate(tree(32), sla="p95")  # another size, the same functions
        assert plan.confidence == "history"
        assert plan.makespan_s is not None and plan.makespan_s > 0
        assert set(plan.predicted.tasks) == set(range(63))  # type: ignore[union-attr]
        assert "p50" in plan.makespan_quantiles
        assert plan.makespan_quantiles["p95"] >= plan.makespan_quantiles["p50"]
        run = s.submit(tree(32), plan=plan)
        run.result()
        submitted = next(e for e in run.events() if isinstance(e, shoal.events.RunSubmitted))
        assert submitted.predicted_makespan_s == pytest.approx(plan.makespan_s)
        history = s.history
        assert history is not None
        runs = s._run(history.workflow_runs(submitted.workflow))
        assert len(runs) == 4 and runs[0].predicted_makespan_s == pytest.approx(plan.makespan_s)
        assert all(r.makespan_s is not None and r.makespan_s > 0 for r in runs)
        listed = {f.fn.rsplit(":", 1)[1]: f.count for f in s._run(history.listing())}
        assert listed == {"leaf": 3 * 16 + 32, "pair": 3 * 15 + 31}


def test_an_invocations_dispatch_is_its_latency_less_its_queueing_and_its_start() -> None:
    starts = [
        StartSample("warm", 0.001, None, None, 0, 0.0, invoke_s=0.004 + q, queued_s=q)
        for q in (0.0, 0.02, 0.05, 0.0)
    ]
    starts.append(StartSample("warm", 0.001, None, None, 0, 0.0))  # submitted: not known
    p = Predictions.from_history(view_of([sample(0, 0.01)] * 5, starts))
    assert p.dispatch == pytest.approx((0.003,) * 4)
    assert p.dispatch_s() == pytest.approx(0.003)
    assert Predictions.from_history(HistoryView()).dispatch_s() == p.defaults.dispatch_s
