"""InProcess: workers as asyncio tasks in the client's own process.

With ``threads=False`` (what ``scheduler="sync"`` uses) task functions run inline on the event
loop, so exactly one runs at a time and ``pdb`` and ``print`` behave as in plain Python. With
``threads=True`` each runs in a thread of the default executor.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .base import Capabilities, Resources

if TYPE_CHECKING:
    from ..config import Settings
    from ..storage.base import Storage


class InProcess:
    name = "inprocess"

    def __init__(self, threads: bool = False) -> None:
        from ..runtime.inputs import WorkerCaches

        self.threads = threads
        # Inline, one task runs at a time: one worker does all the work with no hand-offs.
        self.capabilities = Capabilities(
            max_payload=None,
            warm_reuse=True,
            workers_may_die=False,
            redelivers=False,
            parallelism=(os.cpu_count() or 1) if threads else 1,
        )
        self._caches = WorkerCaches()
        #: Running workers, by run id (a run that gives up cancels its own only).
        self._tasks: dict[str, set[asyncio.Task[None]]] = {}
        self._storage: Storage | None = None
        self._settings: Settings | None = None
        self._ids = itertools.count()

    async def start(self, storage: Storage, settings: Settings) -> None:
        self._storage = storage
        self._settings = settings

    def share_functions(self, functions: dict[bytes, Any]) -> None:
        """Seeds the warm function cache with the client's live function objects: workers in
        this process call the very functions the user decorated (closures see their state)."""
        self._caches.functions.update(functions)

    async def invoke(self, invocation: bytes, resources: Resources | None) -> None:
        from ..runtime.invocation import Invocation
        from ..runtime.worker import run_in_thread, run_inline, run_worker

        if self._storage is None or self._settings is None:
            raise RuntimeError("InProcess backend used before start()")
        coro = run_worker(
            invocation,
            self._storage,
            self,
            settings=self._settings,
            caches=self._caches,
            runner=run_in_thread if self.threads else run_inline,
            name=f"inprocess-{next(self._ids)}",
        )
        run_id = Invocation.peek_run_id(invocation) or ""
        task = asyncio.get_running_loop().create_task(coro)
        tasks = self._tasks.setdefault(run_id, set())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def invoke_many(self, items: Sequence[tuple[bytes, Resources | None]]) -> None:
        for invocation, resources in items:
            await self.invoke(invocation, resources)

    async def queued(self) -> int:
        return 0

    async def drain(self) -> None:
        # Only tasks not done: a finished task leaves its set in a done-callback, which runs
        # only when the loop gets control, and since Python 3.12 gathering finished tasks no
        # longer yields to it; looping on them spun forever (issue 13).
        while running := [t for tasks in self._tasks.values() for t in tasks if not t.done()]:
            await asyncio.gather(*running, return_exceptions=True)

    async def cancel(self, run_id: str) -> None:
        running = [t for t in self._tasks.pop(run_id, ()) if not t.done()]
        for t in running:
            t.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)

    async def close(self) -> None:
        for run_id in list(self._tasks):
            await self.cancel(run_id)

    def __repr__(self) -> str:
        return f"InProcess(threads={self.threads})"
