"""How a worker is invoked. A backend never imports the runtime's internals beyond the worker
entry point; dependencies point one way (runtime -> backends)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..config import Settings
    from ..storage.base import Storage


@dataclass(frozen=True, slots=True)
class Resources:
    """What a worker may use. ``None`` = the backend's default."""

    memory_mb: int | None = None


@dataclass(frozen=True, slots=True)
class Capabilities:
    #: Largest invocation payload the platform accepts (None = no limit).
    max_payload: int | None
    #: Whether a worker process may serve several invocations (warm starts).
    warm_reuse: bool
    #: Whether workers can die on their own (killed, OOM, host lost): then the client watches
    #: leases and recovers. In-process workers die only with the client.
    workers_may_die: bool = True
    #: Whether the platform itself runs an invocation again when its worker dies (Lambda's
    #: retries, the local pool's requeue). Then the watchdog gives a worker whose running lease
    #: expired one more lease lifetime for the platform's own redelivery before it recovers.
    redelivers: bool = False
    #: How many workers the platform runs at once (a pool's slots), or None when it has no
    #: known bound. Fan-outs and roots are split into shares by it (``runtime/shares.py``).
    parallelism: int | None = None


class Backend(Protocol):
    name: str
    capabilities: Capabilities

    async def start(self, storage: Storage, settings: Settings) -> None:
        """Called once by the session before the first run."""

    async def invoke(self, invocation: bytes, resources: Resources | None) -> None:
        """Starts (or hands to a warm worker) one invocation; returns without waiting for it."""

    async def invoke_many(self, items: Sequence[tuple[bytes, Resources | None]]) -> None:
        """Several invocations at once (one round trip where the platform allows it)."""

    async def queued(self) -> int:
        """Invocations the platform accepted that no worker has started yet, as far as it knows
        (0 when it cannot tell). While there are some, the watchdog takes an expired hand-off
        lease for work still waiting its turn, not for work lost."""

    async def drain(self) -> None:
        """Waits until every invocation this backend started has finished."""

    async def cancel(self, run_id: str) -> None:
        """The run gave up (failed, timed out, cancelled): stop what still runs for it, and only
        for it (other runs may share the workers), so its hung tasks do not keep their slots."""

    async def close(self) -> None: ...
