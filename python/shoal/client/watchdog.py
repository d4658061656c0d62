"""The watchdog: finds expired leases (dead workers, lost invocations) and sends recoveries.

A bounded periodic check (one script call per interval, at most once a second and at least
twice per lease lifetime), ticked by the waiting client between reads of the event stream; it
also notices a run whose state vanished from the server. What to run again is decided by
:mod:`.recovery`. Per expired member (see :func:`shoal.storage.keys.leases`):

- ``t<task>``, ``w<worker>``: the worker holding it died: recovered at once;
- ``r<task>``: the worker running it died unseen (the store counted the crash): recovered at
  once, or, on a platform that redelivers by itself, left one more lease lifetime to it (the
  store made it the hand-off ``ht<task>``, which the redelivered worker's START replaces);
- ``ht<task>``, ``hw<worker>``: handed to the platform and not started: while the platform
  reports invocations waiting their turn (:meth:`Backend.queued`), it may be one of them, and
  the check waits, for at most :data:`HANDOFF_PATIENCE_S` (or 12 lease lifetimes) from its
  first expiry; otherwise, or then, it is taken for lost and recovered. A recovery of work that
  was only waiting costs one round trip when it arrives: a task done already is not run again.
"""

from __future__ import annotations

import asyncio
import logging
import time

from .. import events
from ..backends.base import Backend
from ..config import Settings
from ..errors import StorageError
from ..runtime.elements import view
from ..runtime.resources import resources_for
from ..storage import keys
from ..storage.base import Storage
from .recovery import recovery_invocation
from .submit import Submitted

log = logging.getLogger("shoal")

#: The longest an expired hand-off waits for a platform that reports queued invocations.
HANDOFF_PATIENCE_S = 60.0


class Watchdog:
    """Finds expired leases (dead workers) and sends recovery invocations; notices a run whose
    state vanished from the server. A bounded periodic check: one script call per interval."""

    def __init__(
        self, sub: Submitted, storage: Storage, backend: Backend, settings: Settings
    ) -> None:
        self.sub, self.storage, self.backend, self.settings = sub, storage, backend, settings
        self.active = backend.capabilities.workers_may_die
        self.every = min(1.0, max(0.05, storage.lease_ttl_s / 2))
        self._next = time.monotonic() + self.every
        self.recovered = 0
        self.graph = view(sub.frozen.graph)
        self.patience = max(HANDOFF_PATIENCE_S, 12 * storage.lease_ttl_s)
        #: Expired hand-off member -> monotonic time it was first found expired.
        self._waiting: dict[str, float] = {}

    async def tick(self) -> None:
        if not self.active or time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self.every
        expired = await self.storage.expired(self.sub.run_id)
        if expired is None:
            raise StorageError(
                f"the state of run {self.sub.run_id} is gone from the server (it restarted "
                "without persistence, or the keys were deleted); the run cannot finish"
            )
        graph = self.graph
        items = []
        queued: int | None = None
        for member in expired:
            if member.startswith("r") and self.backend.capabilities.redelivers:
                continue  # the platform runs it again; its hand-off lease covers that
            if member.startswith(keys.HANDOFF):
                if queued is None:
                    queued = await self.backend.queued()
                first = self._waiting.setdefault(member, time.monotonic())
                if queued and time.monotonic() - first < self.patience:
                    continue  # probably still waiting its turn; asked again after the grace
                self._waiting.pop(member, None)
            inv = await recovery_invocation(
                self.sub.run_id, graph, _covered(member), self.storage, self.settings
            )
            if inv is None:
                continue
            self.recovered += 1
            lost = events.WorkerLost(lease=member, recovery_start=tuple(inv.start))
            await self.storage.append_event(self.sub.run_id, events.encode(lost))
            tasks = list(inv.start) or list(inv.resume)
            items.append((inv.encode(), resources_for(graph, tasks)))
        await self.backend.invoke_many(items)


async def watch(sub: Submitted, storage: Storage, backend: Backend, settings: Settings) -> None:
    """Watches a submitted run that nobody waits for yet, until it ends (the session cancels it
    when a client starts waiting, whose own watchdog takes over)."""
    dog = Watchdog(sub, storage, backend, settings)
    while dog.active:
        try:
            await dog.tick()
            if await storage.run_ended(sub.run_id):
                return
        except StorageError:  # gone (cleaned up), or the server blips: the waiter will tell
            if await _gone(storage, sub.run_id):
                return
        except Exception as e:  # never die silently: the run would go unwatched
            log.warning("shoal: watching run %s: %s: %s", sub.run_id, type(e).__name__, e)
        await asyncio.sleep(dog.every)


async def _gone(storage: Storage, run_id: str) -> bool:
    try:
        return await storage.run_ended(run_id)
    except StorageError:
        return False


def _covered(member: str) -> str:
    """The queued or worker lease an expired member stands for: ``ht5``, ``r5`` -> ``t5``."""
    if member.startswith(keys.HANDOFF):
        member = member[len(keys.HANDOFF) :]
    return "t" + member[1:] if member.startswith("r") else member
