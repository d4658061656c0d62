"""Settings: explicit arguments first, then ``SHOAL_*`` environment variables, then defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Any

from .errors import ConfigError

KIB = 1024


@dataclass(frozen=True)
class Settings:
    """Tunables shared by the client and the workers.

    ``const_threshold``: argument leaves larger than this (bytes) are stored once by content hash.
    ``inline_output_limit``: upstream outputs up to this size (total) travel inside an invocation.
    ``inline_subdag_limit``: subDAGs up to this size travel inside an invocation, larger ones are
    stored and referenced.
    ``lease_ttl_s``: a worker that stops renewing its leases for this long is taken for dead
    and its work is recovered (renewed every third of it).
    ``max_value_bytes``: the largest encoded output that may go to the store (Redis's limit for
    one value is 512 MiB); a larger one fails its task, naming the limit.
    """

    const_threshold: int = 64 * KIB
    inline_output_limit: int = 64 * KIB
    inline_subdag_limit: int = 128 * KIB
    retry_backoff_s: float = 0.05
    lease_ttl_s: float = 5.0
    max_value_bytes: int = 512 * 1024 * KIB

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        values: dict[str, Any] = {}
        for f in fields(cls):
            env = os.environ.get(f"SHOAL_{f.name.upper()}")
            if env is not None:
                values[f.name] = _parse(f.name, env, type(getattr(cls(), f.name)))
        for name, value in overrides.items():
            if name not in values and not any(f.name == name for f in fields(cls)):
                raise ConfigError(f"unknown setting {name!r}")
            if value is not None:
                values[name] = value
        settings = replace(cls(), **values)
        settings.check()
        return settings

    def to_env(self) -> dict[str, str]:
        """The settings as ``SHOAL_*`` variables, for worker processes started by a backend."""
        return {f"SHOAL_{f.name.upper()}": str(getattr(self, f.name)) for f in fields(self)}

    def check(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value < 0:
                raise ConfigError(f"setting {f.name} must be >= 0, got {value!r}")


def _parse(name: str, raw: str, kind: type) -> Any:
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(
            f"environment variable SHOAL_{name.upper()}={raw!r} is not a valid {kind.__name__}"
        ) from None


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
