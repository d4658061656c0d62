"""The watchdog: finds expired leases (dead workers) and sends recovery invocations.

A bounded periodic check (one script call per interval, at most once a second and at least
twice per lease lifetime), ticked by the waiting client between reads of the event stream; it
also notices a run whose state vanished from the server. What to run again is decided by
:mod:`.recovery`.
"""

from __future__ import annotations

import time

from .. import events
from ..backends.base import Backend
from ..config import Settings
from ..errors import StorageError
from ..runtime.elements import view
from ..runtime.resources import resources_for
from ..storage.base import Storage
from .recovery import recovery_invocation
from .submit import Submitted


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
        for member in expired:
            inv = await recovery_invocation(
                self.sub.run_id, graph, member, self.storage, self.settings
            )
            if inv is None:
                continue
            self.recovered += 1
            lost = events.WorkerLost(lease=member, recovery_start=tuple(inv.start))
            await self.storage.append_event(self.sub.run_id, events.encode(lost))
            tasks = list(inv.start) or list(inv.resume)
            items.append((inv.encode(), resources_for(graph, tasks)))
        await self.backend.invoke_many(items)
