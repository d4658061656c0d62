"""When a worker uploads its metric records: the strategies and the worker's buffer.

A task's *control* fields (which task, worker, attempt, when its function ran) always travel
in its TASK_COMPLETED, written by the completion script: the run needs them. Its *metric*
fields (function identity, bytes, fetch and encode times, optimizations) go by the strategy
(setting ``metrics``, ``SHOAL_METRICS``; a run's invocations carry its session's choice, so a
worker started with another setting still follows the run's):

``task`` (default)
    In the TASK_COMPLETED itself, written atomically with the completion: no extra round trip,
    and a worker killed at any moment loses no record of a task that completed. The cheapest
    strategy that loses nothing, hence the default.
``exit``
    Buffered, appended as TASK_METRICS records when the invocation ends, in one round trip.
    A worker killed mid-invocation loses every record of that invocation.
``every:<seconds>``
    Buffered, appended every that many seconds (and at the end). A kill loses at most the
    last interval's records.
``count:<n>``
    Buffered, appended each time ``n`` are queued (and at the end). A kill loses at most
    ``n - 1`` records.
``off``
    No metric fields at all (the baseline the bench compares the others with; history learns
    nothing).

The history reads TASK_METRICS records back into their task's completion (by task and
attempt), so the records it builds are the same under every strategy that lost nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..events import Fields

KINDS = ("task", "exit", "every", "count", "off")
#: TASK_COMPLETED fields that are metrics, not control (they move under a buffered strategy).
METRIC_FIELDS = (
    "fn",
    "fn_hash",
    "input_bytes",
    "inputs_fetched",
    "inputs_local",
    "fetch_s",
    "output_bytes",
    "encode_s",
    "optimizations",
)
#: Fields a TASK_METRICS record keeps of its completion, to be matched with it.
KEY_FIELDS = ("task", "attempt", "worker")


@dataclass(frozen=True, slots=True)
class Upload:
    kind: str = "task"
    #: Seconds (``every``) or records (``count``).
    n: float = 0.0

    def __str__(self) -> str:
        if self.kind == "every":
            return f"every:{self.n:g}"
        if self.kind == "count":
            return f"count:{int(self.n)}"
        return self.kind

    @property
    def buffered(self) -> bool:
        return self.kind in ("exit", "every", "count")


def parse_upload(text: str) -> Upload:
    """``task``, ``exit``, ``off``, ``every:<seconds>`` (``every:2`` or ``every:2s``),
    ``count:<n>``; anything else is a ConfigError saying what is accepted."""
    kind, _, arg = str(text).strip().lower().partition(":")
    accepted = "task, exit, every:<seconds>, count:<n> or off"
    if kind not in KINDS:
        raise ConfigError(f"setting metrics (SHOAL_METRICS) must be {accepted}, got {text!r}")
    if kind in ("task", "exit", "off"):
        if arg:
            raise ConfigError(f"setting metrics: {kind!r} takes no argument, got {text!r}")
        return Upload(kind)
    try:
        n = float(arg.removesuffix("s")) if kind == "every" else int(arg)
    except ValueError:
        raise ConfigError(
            f"setting metrics: {kind} needs a number, as in {kind}:5, got {text!r}"
        ) from None
    if not n > 0 or n != n or n == float("inf"):
        raise ConfigError(f"setting metrics: {kind} needs a positive number, got {text!r}")
    return Upload(kind, float(n))


def split_fields(fields: Fields) -> tuple[Fields, Fields]:
    """(control fields for TASK_COMPLETED, the TASK_METRICS record of the rest)."""
    control = {k: v for k, v in fields.items() if k not in METRIC_FIELDS}
    record = {"type": "TASK_METRICS", **{k: fields[k] for k in KEY_FIELDS if k in fields}}
    record.update({k: v for k, v in fields.items() if k in METRIC_FIELDS})
    return control, record


@dataclass
class MetricsBuffer:
    """A worker's metric records not uploaded yet (buffered strategies only)."""

    upload: Upload
    pending: list[Fields] = field(default_factory=list)
    #: Seconds, monotonic (a test passes its own).
    clock: Callable[[], float] = time.monotonic
    last_flush: float = -1.0

    def __post_init__(self) -> None:
        self.last_flush = self.clock()
        self._candidate: Fields | None = None

    def completed(self, fields: Fields) -> Fields:
        """The TASK_COMPLETED fields to send now; what waits is held until :meth:`confirm`
        says the store took the completion (a repeat's record would describe another
        worker's attempt)."""
        if self.upload.kind == "task":
            return fields
        control, record = split_fields(fields)
        self._candidate = record if self.upload.buffered else None
        return control

    def confirm(self, first: bool) -> None:
        """The completion just sent was recorded (``first``) or was a repeat."""
        record, self._candidate = self._candidate, None
        if record is not None and first:
            self.pending.append(record)

    def due(self) -> bool:
        if not self.pending:
            return False
        if self.upload.kind == "count":
            return len(self.pending) >= self.upload.n
        if self.upload.kind == "every":
            return self.clock() - self.last_flush >= self.upload.n
        return False

    def take(self) -> list[Fields]:
        taken, self.pending = self.pending, []
        self.last_flush = self.clock()
        return taken

    def put_back(self, taken: list[Fields]) -> None:
        """Records whose upload failed or was interrupted: they go first next time."""
        self.pending[:0] = taken
