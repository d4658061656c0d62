"""Settings: explicit arguments first, then ``SHOAL_*`` environment variables, then defaults."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .errors import ConfigError

KIB = 1024
#: Redis's limit for one value.
REDIS_MAX_VALUE = 512 * 1024 * KIB
#: Sizes go to the Rust core as a ``usize``; no sensible setting comes near this.
_MAX_SIZE = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Bounds:
    """What values a setting accepts: its type and the range ``[lo, hi]`` (or ``(lo, hi]``)."""

    kind: type[int] | type[float]
    lo: float
    above_lo: bool = False
    hi: float = _MAX_SIZE
    unit: str = ""

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is refused, or None."""
        # bool is an int to Python, never a size or a duration here.
        ok_types = (int,) if self.kind is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, ok_types):
            return f"must be {'an integer' if self.kind is int else 'a number'}"
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number"
        if value < self.lo or (self.above_lo and value == self.lo):
            return f"must be {'>' if self.above_lo else '>='} {self.lo:g}{self.unit}"
        if value > self.hi:
            return f"must be <= {self.hi:,}{self.unit}"
        return None


@dataclass(frozen=True, slots=True)
class Text:
    """A text setting: ``parse`` raises ConfigError on a value it refuses; ``accepted`` says
    what it takes."""

    parse: Callable[[str], object]
    accepted: str
    kind: type[str] = str

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, str):
            return f"must be {self.accepted}"
        try:
            self.parse(value)
        except ConfigError:
            return f"must be {self.accepted}"
        return None


def _upload(text: str) -> object:
    from .metrics.upload import parse_upload

    return parse_upload(text)


def _planner(text: str) -> object:
    from .planners import by_name

    try:
        return by_name(text)
    except Exception as e:
        raise ConfigError(str(e)) from None


def _setting(default: int | float | str, bounds: Bounds | Text) -> Any:
    return field(default=default, metadata={"bounds": bounds})


@dataclass(frozen=True)
class Settings:
    """Tunables shared by the client and the workers. Each is checked on construction
    (:class:`~shoal.errors.ConfigError` naming the setting and its variable).

    ``const_threshold``: argument leaves larger than this (bytes) are stored once by content hash.
    ``inline_output_limit``: upstream outputs up to this size (total) travel inside an invocation.
    ``inline_subdag_limit``: subDAGs up to this size travel inside an invocation, larger ones are
    stored and referenced.
    ``retry_backoff_s``: the first retry of a failing task waits about this long, doubling after.
    ``lease_ttl_s``: a worker that stops renewing its leases for this long is taken for dead
    and its work is recovered (renewed every third of it).
    ``max_value_bytes``: the largest encoded output that may go to the store (Redis's limit for
    one value is 512 MiB); a larger one fails its task, naming the limit.
    ``metrics``: when workers upload their metric records (:mod:`shoal.metrics.upload`):
    ``task`` (with each completion, the default: nothing lost when a worker dies), ``exit``,
    ``every:<seconds>``, ``count:<n>``, ``off``.
    ``planner``: the planner a run uses when none is given (:mod:`shoal.planners`):
    ``default`` (groups tasks by structure, by measured costs once there is history),
    ``uniform``, ``simple``, ``wukong``, or ``none`` (every task flexible).
    ``crash_attempts``: a task whose workers die while running it (``os._exit``, a segfault,
    out of memory, a lost host) fails the run after this many crashes, or ``retries`` + 1 if
    that is more (Dask and Ray also stop at 3).
    """

    # 0 is meaningful for the sizes: every leaf by hash, nothing inline.
    const_threshold: int = _setting(64 * KIB, Bounds(int, 0))
    inline_output_limit: int = _setting(64 * KIB, Bounds(int, 0))
    inline_subdag_limit: int = _setting(128 * KIB, Bounds(int, 0))
    retry_backoff_s: float = _setting(0.05, Bounds(float, 0, unit=" s"))
    # Workers renew every max(0.05 s, a third of the TTL): a shorter lease would lapse between
    # renewals, and every task would look dead.
    lease_ttl_s: float = _setting(5.0, Bounds(float, 0.15, unit=" s"))
    # 0 would refuse every output; Redis refuses a value over 512 MiB with an unclear error.
    max_value_bytes: int = _setting(REDIS_MAX_VALUE, Bounds(int, 0, True, REDIS_MAX_VALUE))
    crash_attempts: int = _setting(3, Bounds(int, 1))
    metrics: str = _setting("task", Text(_upload, "task, exit, every:<seconds>, count:<n> or off"))
    planner: str = _setting("default", Text(_planner, "default, uniform, simple, wukong or none"))

    def __post_init__(self) -> None:
        self.check()

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ConfigError(f"unknown setting {unknown[0]!r} (known: {', '.join(sorted(names))})")
        values: dict[str, Any] = {}
        for f in fields(cls):
            if overrides.get(f.name) is not None:  # an argument wins over the environment
                values[f.name] = overrides[f.name]
                continue
            raw = os.environ.get(env_var(f.name))
            if raw is not None:
                values[f.name] = _parse(f.name, raw, f.metadata["bounds"].kind)
        return replace(cls(), **values)

    def to_env(self) -> dict[str, str]:
        """The settings as ``SHOAL_*`` variables, for worker processes started by a backend."""
        return {env_var(f.name): str(getattr(self, f.name)) for f in fields(self)}

    def check(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            problem = f.metadata["bounds"].problem(value)
            if problem is not None:
                raise ConfigError(
                    f"setting {f.name} (environment variable {env_var(f.name)}) {problem}, "
                    f"got {value!r:.40}"
                )


def env_var(name: str) -> str:
    """The environment variable of setting ``name``."""
    return f"SHOAL_{name.upper()}"


def _parse(name: str, raw: str, kind: type[int] | type[float] | type[str]) -> int | float | str:
    if kind is str:
        return raw
    try:
        return kind(raw)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise ConfigError(
            f"setting {name}: environment variable {env_var(name)}={raw!r} is not {what}"
        ) from None


#: URL schemes redis-py connects with.
_REDIS_SCHEMES = ("redis", "rediss", "unix")


def check_redis_url(url: str, source: str) -> str:
    """``url`` if redis-py can connect with it, else a ConfigError naming ``source`` (the
    argument or variable it came from), with any password redacted."""
    from urllib.parse import urlsplit

    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise ConfigError(f"{source}: {shown!r} is not a valid Redis URL ({e})") from None
    if parts.scheme not in _REDIS_SCHEMES:
        raise ConfigError(
            f"{source}: {shown!r} is not a Redis URL: it must start with "
            + ", ".join(f"{s}://" for s in _REDIS_SCHEMES)
        )
    if parts.scheme != "unix" and not parts.hostname:
        raise ConfigError(f"{source}: {shown!r} names no host")
    if port == 0:
        raise ConfigError(f"{source}: {shown!r} has port 0")
    return url


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs)."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
