"""What a worker is invoked with: run id, worker id, start tasks, a subDAG and inline inputs.

Encoded as msgpack behind a 4-byte header (``SHI`` + version). Undecodable or malformed input
raises :class:`~shoal.errors.PayloadError`, so a worker can report it and exit cleanly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgpack

from ..errors import PayloadError
from ..signing import seal, unseal, unverified_payload

_MAGIC = b"SHI"
_VERSION = 4
#: The signing place of every invocation (:mod:`shoal.signing`): the run id is inside, under
#: the same signature.
PLACE = "invocation"


@dataclass(frozen=True, slots=True)
class Invocation:
    run_id: str
    #: The pinned worker id this invocation is, or None for a flexible worker.
    worker: int | None
    #: Tasks that are ready to run now.
    start: tuple[int, ...]
    #: The encoded subDAG, inline...
    subdag: bytes | None = None
    #: ...or the name it is stored under (see ``storage.keys.subdags``).
    subdag_name: str | None = None
    #: Encoded upstream outputs that travel with the invocation.
    inputs: dict[int, bytes] = field(default_factory=dict)
    #: Recovery only: done tasks whose outputs were lost with a dead worker, to run again here
    #: (their completions are repeats) so that ``resume`` tasks get their inputs.
    recompute: tuple[int, ...] = ()
    #: Recovery only: the tasks the dead worker held (ready or running) that must run.
    resume: tuple[int, ...] = ()
    #: Recovery of a pinned worker: its tasks that are done already.
    skip: tuple[int, ...] = ()
    #: The run's metrics upload strategy (``Settings.metrics``; "": the worker's own).
    metrics: str = ""
    #: The task whose completion made this invocation (None: submission or recovery), and
    #: when it was made (server clock): the invoked worker reports the invocation's latency.
    invoked_by: int | None = None
    invoked_at: float | None = None

    def encode(self) -> bytes:
        body = [
            self.run_id,
            self.worker,
            list(self.start),
            self.subdag,
            self.subdag_name,
            self.inputs,
            list(self.recompute),
            list(self.resume),
            list(self.skip),
            self.metrics,
            self.invoked_by,
            self.invoked_at,
        ]
        packed: bytes = msgpack.packb(body, use_bin_type=True)
        return seal(_MAGIC + bytes([_VERSION]) + packed, PLACE)

    @staticmethod
    def peek_run_id(data: bytes) -> str | None:
        """The run id of an invocation that was refused, to report it (msgpack: no pickle)."""
        try:
            body = unverified_payload(data)
            run_id = msgpack.unpackb(body[4:], raw=False, strict_map_key=False)[0]
        except Exception:
            return None
        return run_id if isinstance(run_id, str) and run_id else None

    @staticmethod
    def decode(data: bytes) -> Invocation:
        data = unseal(data, "an invocation", PLACE)
        if len(data) < 4 or data[:3] != _MAGIC:
            raise PayloadError("cannot decode invocation: not a shoal invocation (bad magic)")
        if data[3] != _VERSION:
            raise PayloadError(f"cannot decode invocation: unsupported version {data[3]}")
        try:
            body = msgpack.unpackb(data[4:], raw=False, strict_map_key=False)
            run_id, worker, start, subdag, name, inputs, recompute, resume, skip, metrics = body[
                :10
            ]
            invoked_by, invoked_at = body[10:]
            inv = Invocation(
                run_id,
                worker,
                tuple(start),
                subdag,
                name,
                dict(inputs),
                tuple(recompute),
                tuple(resume),
                tuple(skip),
                metrics,
                invoked_by,
                invoked_at,
            )
        except Exception as e:
            raise PayloadError(f"cannot decode invocation: {type(e).__name__}: {e}") from e
        _check(inv)
        return inv


def _check(inv: Invocation) -> None:
    def ids_ok(xs: object) -> bool:
        return isinstance(xs, tuple | list) and all(
            isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in xs
        )

    problems = []
    if not isinstance(inv.run_id, str) or not inv.run_id:
        problems.append("run id")
    if inv.worker is not None and (not isinstance(inv.worker, int) or inv.worker < 0):
        problems.append("worker id")
    if not ids_ok(inv.start):
        problems.append("start tasks")
    for what, ids in (("recompute", inv.recompute), ("resume", inv.resume), ("skip", inv.skip)):
        if not ids_ok(ids):
            problems.append(f"{what} tasks")
    if (inv.subdag is None) == (inv.subdag_name is None):
        problems.append("subDAG (exactly one of inline or stored)")
    if inv.subdag is not None and not isinstance(inv.subdag, bytes):
        problems.append("inline subDAG")
    if inv.subdag_name is not None and not isinstance(inv.subdag_name, str):
        problems.append("subDAG name")
    if not isinstance(inv.metrics, str):
        problems.append("metrics strategy")
    if inv.invoked_by is not None and not ids_ok([inv.invoked_by]):
        problems.append("invoking task")
    at = inv.invoked_at
    if at is not None and (not isinstance(at, float | int) or isinstance(at, bool) or at < 0):
        problems.append("invocation time")
    if not ids_ok(list(inv.inputs)) or not all(isinstance(v, bytes) for v in inv.inputs.values()):
        problems.append("inline inputs")
    if problems:
        raise PayloadError(f"malformed invocation: bad {', '.join(problems)}")
