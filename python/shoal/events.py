"""The event schema: one typed record per event of a run's stream, and one codec for it.

Every run has one Redis stream (``storage.keys.events``). Workers, the store's scripts and the
client append to it; the client's wait, the progress bar, ``Run.events()``, the CLI and the
dashboard read it. A stream entry is flat string fields; this module is the only place that
turns records into fields (:func:`encode`) and fields into records (:func:`decode`), so every
reader sees the same names, types and defaults. The README documents the schema (it is a public
interface), and a test checks that it lists every record and field here.

Field encoding: ints as decimal, floats by ``repr`` (exact), booleans as ``1``/``0``, tuples as
comma-separated values; a field whose value is its default (None, an empty
tuple, 0 where 0 is the default) is left out, and decodes to that default. Every decoded
record also carries ``id`` (the stream entry id) and ``at`` (the server's clock when the entry
was appended, in seconds): one clock for every event, whichever host wrote it.

A few events are written by the store's Lua scripts (``storage/scripts.py``) rather than by
Python: RUN_COMPLETED, RUN_FAILED, RUN_CANCELLED, TASK_CRASHED, MAP_EXPANDED's
``task``/``width`` and the TASK_COMPLETED of a gathered map (``task``, ``width``, ``name``).
Their fields are declared here all the same.

An entry whose ``type`` this version does not know decodes to :class:`UnknownEvent` (a newer
writer), never an error; a known type missing a required field is a
:class:`~shoal.errors.PayloadError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .errors import PayloadError

#: An event as the stream holds it: flat string fields.
Fields = dict[str, str]


@dataclass(kw_only=True, slots=True)
class Event:
    """Base of every record. ``id`` and ``at`` are set by :func:`decode`, never encoded.

    Records are plain (not frozen) dataclasses: a worker builds two per task, and a frozen one
    of 18 fields costs four times as much to construct."""

    type: ClassVar[str] = ""
    #: Stream entry id (``<server ms>-<seq>``); empty before the event is appended.
    id: str = field(default="", compare=False)
    #: Server time of the append, in seconds (from the entry id).
    at: float = field(default=0.0, compare=False)


@dataclass(kw_only=True, slots=True)
class RunSubmitted(Event):
    """The client stored the run and is about to invoke its first workers."""

    type: ClassVar[str] = "RUN_SUBMITTED"
    #: Server time of the submission.
    time: float
    tasks: int
    outputs: int
    #: Names of the requested output tasks, comma-separated (cut at 200 characters).
    names: str = ""
    #: The planner that made the run's plan ("" when none ran).
    planner: str = ""
    #: The workflow's identity, the same at any size (hex; see :mod:`shoal.identity`).
    workflow: str = ""
    #: The plan's predicted makespan, seconds (None: the run had no predictions).
    predicted_makespan_s: float | None = None
    #: How many workers the platform runs at once (None: no known bound).
    slots: int | None = None
    #: Idle warm worker processes when the run was submitted.
    warm: int = 0


@dataclass(kw_only=True, slots=True)
class TaskStarted(Event):
    """A worker starts an attempt of a task (its inputs are being fetched).

    The first task of an invocation also says how the worker started and what it received.
    """

    type: ClassVar[str] = "TASK_STARTED"
    task: int
    name: str
    #: ``<host>:<pid>:<invocation>`` plus ``/w<id>`` on a pinned worker.
    worker: str
    #: The pinned worker id (None: a flexible worker).
    worker_id: int | None = None
    attempt: int = 1
    time: float
    #: ``cold`` (a new process) or ``warm`` (a reused one); first task of an invocation only.
    start_kind: str | None = None
    #: Invocation handed to the worker's process -> worker ready (the start itself), and
    #: process spawn -> ready (cold starts), seconds.
    start_latency_s: float | None = None
    process_start_s: float | None = None
    #: Invocation queued -> handed to a process (the wait for a free slot), seconds.
    queued_s: float | None = None
    #: The size the worker was started with (None: the platform's default).
    memory_mb: int | None = None
    cpu: float | None = None
    #: Encoded size of the subDAG the invocation carried or referenced, and its decode time.
    subdag_bytes: int | None = None
    subdag_decode_s: float | None = None
    #: The task whose completion invoked this worker (None: submission or recovery), and the
    #: invocation's latency: made by that worker -> this task announced, seconds.
    invoked_by: int | None = None
    invoke_s: float | None = None


@dataclass(kw_only=True, slots=True)
class TaskCompleted(Event):
    """A task's completion was recorded (written by the completion script, atomically).

    A gathered map's completion (its last element done) carries ``task``, ``name`` and
    ``width`` only.
    """

    type: ClassVar[str] = "TASK_COMPLETED"
    task: int
    name: str = ""
    #: Qualified name of the task's function and the 16-byte hash of its code (hex; see
    #: :mod:`shoal.identity`): together the function's identity (two closures named ``f``
    #: differ by hash; a changed function is a new one).
    fn: str = ""
    fn_hash: str = ""
    worker: str = ""
    worker_id: int | None = None
    attempt: int = 1
    #: Server time when the function started and returned.
    start: float | None = None
    end: float | None = None
    #: Inputs fetched from the store: total bytes, count, and the time the fetch took; inputs
    #: that were already on the worker (held in memory or sent inline) count as local.
    input_bytes: int = 0
    inputs_fetched: int = 0
    inputs_local: int = 0
    fetch_s: float = 0.0
    #: Encoded output size (0: the value stayed on its worker) and encoding time.
    output_bytes: int = 0
    encode_s: float = 0.0
    #: Server time when the completion was recorded (written by the store): ``stored_at -
    #: end`` is what storing the output took (encoding, the upload, the completion script).
    stored_at: float | None = None
    #: The optimizations that acted on this attempt (kinds, see ``shoal.planning``).
    optimizations: tuple[str, ...] = ()
    #: For a map: how many elements it had.
    width: int | None = None


@dataclass(kw_only=True, slots=True)
class TaskMetrics(Event):
    """The metric fields of a TASK_COMPLETED, uploaded later by a buffered strategy (``exit``,
    ``every:N``, ``count:N``; see :mod:`shoal.metrics.upload`): matched with its completion
    by ``task`` and ``attempt``."""

    type: ClassVar[str] = "TASK_METRICS"
    task: int
    attempt: int = 1
    worker: str = ""
    fn: str = ""
    fn_hash: str = ""
    input_bytes: int = 0
    inputs_fetched: int = 0
    inputs_local: int = 0
    fetch_s: float = 0.0
    output_bytes: int = 0
    encode_s: float = 0.0
    optimizations: tuple[str, ...] = ()


@dataclass(kw_only=True, slots=True)
class TaskRetry(Event):
    """An attempt failed and the task will run again after ``delay_s``."""

    type: ClassVar[str] = "TASK_RETRY"
    task: int
    name: str = ""
    #: The attempt about to start (the failed one is ``attempt - 1``).
    attempt: int
    exc_type: str
    message: str = ""
    worker: str = ""
    worker_id: int | None = None
    delay_s: float = 0.0
    time: float | None = None


@dataclass(kw_only=True, slots=True)
class TaskFailed(Event):
    """A task failed for good (after its retries); RUN_FAILED follows in the same transaction.

    ``task`` is -1 and ``name`` ``<worker>`` when a worker itself could not go on (a refused
    payload, an unreachable store)."""

    type: ClassVar[str] = "TASK_FAILED"
    task: int
    name: str
    attempt: int = 1
    exc_type: str
    message: str = ""
    #: The remote traceback, from the user's function down.
    traceback: str = ""
    worker: str = ""
    time: float | None = None
    #: The exception object, encoded and sealed for this run and task, base64 (empty when it
    #: could not travel): the client raises it as a ``TaskError`` of its type.
    exception: str = ""
    #: The remote traceback's frames as JSON, for debuggers: ``[file, function, line, module,
    #: end line, column, end column]`` each.
    frames: str = ""


@dataclass(kw_only=True, slots=True)
class MapExpanded(Event):
    """A map chain's root ran: its source had ``width`` items; ``elements`` tasks appeared."""

    type: ClassVar[str] = "MAP_EXPANDED"
    task: int
    width: int
    name: str = ""
    #: Element tasks created (width times the maps of the chain).
    elements: int = 0
    worker: str = ""
    time: float | None = None


@dataclass(kw_only=True, slots=True)
class WorkerExited(Event):
    """A pinned worker's invocation ended: what it did and where its time went (sent with the
    release of its lease, in the same round trip; a flexible worker's time is its tasks')."""

    type: ClassVar[str] = "WORKER_EXITED"
    worker: str
    worker_id: int | None = None
    #: ``no more work``, ``task failed``, ``run ended``.
    reason: str = ""
    #: Attempts it ran, seconds spent running functions, and parked on its inbox.
    tasks: int = 0
    busy_s: float = 0.0
    parked_s: float = 0.0
    time: float | None = None


@dataclass(kw_only=True, slots=True)
class WorkerLost(Event):
    """The client's watchdog found an expired lease and sent a recovery invocation."""

    type: ClassVar[str] = "WORKER_LOST"
    #: The lease member that expired (see :func:`shoal.storage.keys.leases`).
    lease: str
    #: The tasks the recovery worker starts with.
    recovery_start: tuple[int, ...] = ()


@dataclass(kw_only=True, slots=True)
class TaskCrashed(Event):
    """A worker died while it ran a task (written by the store's scripts: the pool's report of
    a process that exited, or the watchdog finding the task's running lease expired)."""

    type: ClassVar[str] = "TASK_CRASHED"
    task: int
    #: How the worker died: ``exit code 1``, ``killed by SIGSEGV``, ``lost (...)``.
    how: str
    #: Crashes of this task so far, this one included.
    crashes: int = 1
    #: The process or worker that died, when known.
    worker: str = ""


@dataclass(kw_only=True, slots=True)
class RunCompleted(Event):
    """Every requested output is done (written by the completion script)."""

    type: ClassVar[str] = "RUN_COMPLETED"


@dataclass(kw_only=True, slots=True)
class RunFailed(Event):
    """The run failed; the TASK_FAILED just before says why (written by the failure script)."""

    type: ClassVar[str] = "RUN_FAILED"
    task: int = -1


@dataclass(kw_only=True, slots=True)
class RunCancelled(Event):
    """The run was stopped before it ended (written by the cancel script): no task of it starts
    after this, and its keys are deleted once its waiter has cleaned up."""

    type: ClassVar[str] = "RUN_CANCELLED"
    #: ``cancelled`` (``Run.cancel()``), ``interrupted`` (Ctrl-C, SIGTERM), ``timeout``.
    reason: str = ""


@dataclass(kw_only=True, slots=True)
class UnknownEvent(Event):
    """An event type this version does not know (written by a newer version)."""

    name: str
    fields: Mapping[str, str]


#: Every record type by its ``type`` name, in the order the README lists them.
RECORDS: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        RunSubmitted,
        TaskStarted,
        TaskCompleted,
        TaskMetrics,
        TaskRetry,
        TaskFailed,
        MapExpanded,
        WorkerExited,
        WorkerLost,
        TaskCrashed,
        RunCompleted,
        RunFailed,
        RunCancelled,
    )
}

#: Events after which a run's stream gets no more task events.
TERMINAL = ("RUN_COMPLETED", "RUN_FAILED", "RUN_CANCELLED")


# -- codec ---------------------------------------------------------------------------------

_Codec = tuple[Callable[[Any], str | None], Callable[[str], Any]]


def _tuple_of(item: Callable[[str], Any]) -> _Codec:
    def enc(v: Any) -> str | None:
        return ",".join(str(x) for x in v) if v else None

    def dec(s: str) -> tuple[Any, ...]:
        return tuple(item(x) for x in s.split(",")) if s else ()

    return enc, dec


def _optional(c: _Codec) -> _Codec:
    enc, dec = c
    return (lambda v: None if v is None else enc(v)), dec


_BY_ANNOTATION: dict[str, _Codec] = {
    "int": (str, int),
    "float": (repr, float),
    "str": (lambda v: v, lambda s: s),
    "bool": (lambda v: "1" if v else "0", lambda s: s == "1"),
    "tuple[str, ...]": _tuple_of(str),
    "tuple[int, ...]": _tuple_of(int),
}


def _codec(annotation: str) -> _Codec:
    base = annotation.removesuffix(" | None")
    c = _BY_ANNOTATION[base]
    return _optional(c) if base != annotation else c


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    encode: Callable[[Any], str | None]
    decode: Callable[[str], Any]
    required: bool
    #: The default value: a field equal to it is left out (decoding restores it).
    default: Any


@dataclass(frozen=True, slots=True)
class _Schema:
    """One record type's fields, in order, and by name (decoding walks the entry's fields)."""

    fields: tuple[_Field, ...]
    by_name: dict[str, _Field]
    required: frozenset[str]
    #: The type's encoder, compiled from ``fields`` (see :func:`_compile_encoder`).
    encode: Callable[[Any], Fields]


#: Plain annotations whose encoding is an expression, inlined by the compiled encoders.
_INLINE = {"int": "str(v)", "float": "repr(v)", "str": "v", "bool": "('1' if v else '0')"}


def _compile_encoder(kind: str, fields: tuple[_Field, ...], hints: dict[str, str]) -> Any:
    """One function per record type that writes its fields: a worker encodes two events per
    task, and a generic loop over the schema cost more than the rest of the reporting (the
    same technique ``dataclasses`` uses for ``__init__``). A field equal to its default is
    left out; a required one always goes."""
    env: dict[str, Any] = {}
    lines = ["def encode(e):", f"    out = {{'type': {kind!r}}}"]
    for i, f in enumerate(fields):
        expr = _INLINE.get(hints[f.name], f"enc{i}(v)")
        env[f"enc{i}"], env[f"default{i}"] = f.encode, f.default
        lines.append(f"    v = e.{f.name}")
        if f.required:
            lines.append(f"    out[{f.name!r}] = {expr}")
            continue
        lines.append(f"    if v is not default{i} and v != default{i}:")
        if expr.startswith("enc"):  # may give None (an empty tuple)
            lines += [f"        t = {expr}", f"        if t is not None: out[{f.name!r}] = t"]
        else:
            lines.append(f"        out[{f.name!r}] = {expr}")
    lines.append("    return out")
    exec("\n".join(lines), env)  # source built from our own field names only
    return env["encode"]


def _schema_of(cls: type[Event]) -> _Schema:
    hints = dict(cls.__annotations__)
    for base in cls.__mro__[1:]:
        for k, v in getattr(base, "__annotations__", {}).items():
            hints.setdefault(k, v)
    out = []
    for f in dataclasses.fields(cls):
        if f.name in ("id", "at"):
            continue
        enc, dec = _codec(str(hints[f.name]))
        if f.default is not dataclasses.MISSING:
            default, required = f.default, False
        elif f.default_factory is not dataclasses.MISSING:
            default, required = f.default_factory(), False
        else:
            default, required = None, True
        out.append(_Field(f.name, enc, dec, required, default))
    fields = tuple(out)
    names = {f.name: str(hints[f.name]) for f in fields}
    return _Schema(
        fields,
        {f.name: f for f in fields},
        frozenset(f.name for f in fields if f.required),
        _compile_encoder(cls.type, fields, names),
    )


_SCHEMA: dict[str, _Schema] = {name: _schema_of(cls) for name, cls in RECORDS.items()}


def schema() -> dict[str, list[tuple[str, bool]]]:
    """Per event type: its fields and whether each is required (for docs and tests)."""
    return {t: [(f.name, f.required) for f in s.fields] for t, s in _SCHEMA.items()}


def encode(event: Event) -> Fields:
    """The flat stream fields of ``event``, ``type`` first."""
    if isinstance(event, UnknownEvent):
        return {"type": event.name, **event.fields}
    fields: Fields = _SCHEMA[event.type].encode(event)
    return fields


def decode(fields: Mapping[str, str], entry_id: str = "") -> Event:
    """The record of one stream entry (``entry_id`` gives ``id`` and ``at``)."""
    kind = fields.get("type", "")
    at = _entry_time(entry_id)
    cls = RECORDS.get(kind)
    if cls is None:
        rest = {k: v for k, v in fields.items() if k != "type"}
        return UnknownEvent(id=entry_id, at=at, name=kind, fields=rest)
    known = _SCHEMA[kind]
    values: dict[str, Any] = {}
    for name, raw in fields.items():
        f = known.by_name.get(name)
        if f is None:
            continue  # "type", or a field a newer writer added
        try:
            values[name] = f.decode(raw)
        except (ValueError, TypeError) as e:
            raise PayloadError(
                f"event {kind} {entry_id or ''}: field {name!r} = {raw!r:.60} is not valid: {e}"
            ) from None
    if len(values) < len(known.required) or not known.required <= values.keys():
        missing = min(known.required - values.keys())
        raise PayloadError(f"event {kind} {entry_id or ''} lacks field {missing!r}")
    return cls(id=entry_id, at=at, **values)


def _entry_time(entry_id: str) -> float:
    ms, _, _ = entry_id.partition("-")
    return int(ms) / 1000 if ms.isdigit() else 0.0
