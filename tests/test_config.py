"""Every ``SHOAL_*`` setting refuses bad values with a ConfigError naming the setting and its
environment variable, whether the value comes from an argument or from the environment."""

from __future__ import annotations

import math
import os
from dataclasses import fields

import pytest

import shoal
from shoal.backends import InProcess
from shoal.config import REDIS_MAX_VALUE, Settings, env_var
from shoal.storage.memory import MemoryStorage

INTS = ["const_threshold", "inline_output_limit", "inline_subdag_limit"]

#: Per setting: bad values given as arguments, bad values given in the environment.
BAD: dict[str, tuple[list[object], list[str]]] = {
    **{
        name: ([-1, 1.5, "64", True, math.inf], ["abc", "", "-1", "1.5", "64k", "1e3"])
        for name in INTS
    },
    "retry_backoff_s": ([-0.1, -1, math.nan, math.inf, "0.1", True], ["abc", "", "-1", "nan"]),
    "lease_ttl_s": ([0, 0.0, -1, 0.1, math.nan, math.inf, "5"], ["0", "abc", "-5", "inf", "0.01"]),
    "max_value_bytes": (
        [0, -1, REDIS_MAX_VALUE + 1, 1.5, False],
        ["0", "lots", "-1", str(REDIS_MAX_VALUE + 1), "1e6"],
    ),
    "crash_attempts": ([0, -1, 2.5, "3", True], ["0", "-2", "three", "2.5", ""]),
    "metrics": ([3, b"task", "always", "every:0", "count:-2"], ["", "hourly", "every:", "exit:2"]),
    "planner": ([3, b"default", "fastest", "Wukong"], ["", "uniform()", "heft"]),
}

#: Per setting: the smallest accepted value (the bound itself where it is inclusive) and the
#: largest where there is one, so the bounds above are not stricter than they should be.
EDGES: dict[str, list[object]] = {
    **{name: [0, 10**12] for name in INTS},
    "retry_backoff_s": [0, 0.0, 30],
    "lease_ttl_s": [0.15, 1, 3600.0],
    "max_value_bytes": [1, REDIS_MAX_VALUE],
    "crash_attempts": [1, 3, 1000],
    "metrics": ["task", "exit", "off", "every:0.001", "count:1"],
    "planner": ["default", "uniform", "simple", "wukong", "none"],
}

ARGUMENT_CASES = [(name, bad) for name, (args, _env) in BAD.items() for bad in args]
ENV_CASES = [(name, raw) for name, (_args, envs) in BAD.items() for raw in envs]


@pytest.fixture(autouse=True)
def no_shoal_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in list(os.environ):
        if var.startswith("SHOAL_"):
            monkeypatch.delenv(var)


def test_every_setting_has_bad_and_edge_cases() -> None:
    names = {f.name for f in fields(Settings)}
    assert set(BAD) == names
    assert set(EDGES) == names


def assert_names(err: pytest.ExceptionInfo[shoal.ConfigError], name: str) -> None:
    assert f"setting {name}" in str(err.value)
    assert env_var(name) in str(err.value)


@pytest.mark.parametrize(("name", "bad"), ARGUMENT_CASES, ids=repr)
def test_a_bad_argument_is_refused_naming_the_setting(name: str, bad: object) -> None:
    with pytest.raises(shoal.ConfigError) as err:
        Settings.from_env(**{name: bad})
    assert_names(err, name)
    with pytest.raises(shoal.ConfigError) as err:
        Settings(**{name: bad})  # type: ignore[arg-type]
    assert_names(err, name)


@pytest.mark.parametrize(("name", "raw"), ENV_CASES, ids=repr)
def test_a_bad_environment_variable_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, raw: str
) -> None:
    monkeypatch.setenv(env_var(name), raw)
    with pytest.raises(shoal.ConfigError) as err:
        Settings.from_env()
    assert_names(err, name)
    # A Session reads the environment the same way (and so does every worker process).
    with pytest.raises(shoal.ConfigError) as err:
        shoal.Session(storage=MemoryStorage(), backend=InProcess())
    assert_names(err, name)


def test_an_unparsable_variable_is_quoted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_INLINE_SUBDAG_LIMIT", "128 KiB")
    with pytest.raises(shoal.ConfigError, match=r"SHOAL_INLINE_SUBDAG_LIMIT='128 KiB' is not"):
        Settings.from_env()


@pytest.mark.parametrize(
    ("name", "value"), [(n, v) for n, vs in EDGES.items() for v in vs], ids=repr
)
def test_values_at_the_bounds_are_accepted(
    monkeypatch: pytest.MonkeyPatch, name: str, value: object
) -> None:
    assert getattr(Settings.from_env(**{name: value}), name) == value
    monkeypatch.setenv(env_var(name), str(value))
    assert getattr(Settings.from_env(), name) == value


def test_lease_ttl_of_zero_is_refused_with_the_floor_named() -> None:
    with pytest.raises(shoal.ConfigError, match=r"lease_ttl_s .* must be >= 0\.15 s, got 0"):
        Settings.from_env(lease_ttl_s=0)


def test_max_value_bytes_over_the_redis_limit_names_it() -> None:
    with pytest.raises(shoal.ConfigError, match="must be <= 536,870,912"):
        Settings.from_env(max_value_bytes=REDIS_MAX_VALUE + 1)


def test_an_argument_wins_over_a_bad_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_LEASE_TTL_S", "zero")
    assert Settings.from_env(lease_ttl_s=2.5).lease_ttl_s == 2.5


def test_environment_values_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_LEASE_TTL_S", "0.6")
    monkeypatch.setenv("SHOAL_CONST_THRESHOLD", "100")
    s = Settings.from_env()
    assert (s.lease_ttl_s, s.const_threshold) == (0.6, 100)
    assert s.inline_output_limit == Settings().inline_output_limit


def test_an_unknown_setting_is_refused() -> None:
    with pytest.raises(shoal.ConfigError, match="unknown setting 'lease_ttl'"):
        Settings.from_env(lease_ttl=1)


def test_settings_survive_the_trip_to_worker_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers rebuild their settings from ``to_env()``: every value comes back equal."""
    s = Settings.from_env(
        const_threshold=1,
        inline_output_limit=2,
        inline_subdag_limit=3,
        retry_backoff_s=0.25,
        lease_ttl_s=0.6,
        max_value_bytes=10_000,
    )
    for var, value in s.to_env().items():
        monkeypatch.setenv(var, value)
    assert Settings.from_env() == s


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("not a url", "is not a Redis URL"),
        ("http://127.0.0.1:6379/0", "must start with redis://"),
        ("redis://127.0.0.1:99999", "not a valid Redis URL"),
        ("redis://:6379/0", "names no host"),
        ("redis://user:hunter2@127.0.0.1:0", "has port 0"),
    ],
)
def test_a_bad_redis_url_is_a_config_error_naming_where_it_came_from(
    monkeypatch: pytest.MonkeyPatch, url: str, says: str
) -> None:
    monkeypatch.setenv("SHOAL_REDIS_URL", url)
    with pytest.raises(shoal.ConfigError, match=f"SHOAL_REDIS_URL: .*{says}") as err:
        shoal.Session(progress=False)
    assert "hunter2" not in str(err.value)
    monkeypatch.delenv("SHOAL_REDIS_URL")
    with pytest.raises(shoal.ConfigError, match=f"redis_url: .*{says}"):
        shoal.Session(redis_url=url, progress=False)


def test_an_empty_redis_url_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_REDIS_URL", "")
    with shoal.Session(progress=False) as s:
        assert s.redis_url is not None and s.redis_url.startswith(("redis://", "unix://"))
        assert s.compute(add(1, 2)) == (3,)


@shoal.task
def add(x: int, y: int) -> int:
    return x + y


def test_the_version_is_cargos_alone() -> None:
    """Cargo.toml's workspace version is the one version: pyproject leaves it to maturin, and
    ``shoal.__version__`` is the installed package's (from that build)."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    cargo = tomllib.loads((root / "Cargo.toml").read_text())["workspace"]["package"]["version"]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert shoal.__version__ == cargo
