"""InProcess: workers as asyncio tasks in the client's own process.

With ``threads=False`` (what ``scheduler="sync"`` uses) task functions run inline on the event
loop, so exactly one runs at a time and ``pdb`` and ``print`` behave as in plain Python. With
``threads=True`` each runs in a thread of the default executor.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .base import Capabilities, Resources

if TYPE_CHECKING:
    from ..config import Settings
    from ..storage.base import Storage


class InProcess:
    name = "inprocess"
    capabilities = Capabilities(max_payload=None, warm_reuse=True, workers_may_die=False)

    def __init__(self, threads: bool = False) -> None:
        from ..runtime.inputs import WorkerCaches

        self.threads = threads
        self._caches = WorkerCaches()
        self._tasks: set[asyncio.Task[None]] = set()
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
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def invoke_many(self, items: Sequence[tuple[bytes, Resources | None]]) -> None:
        for invocation, resources in items:
            await self.invoke(invocation, resources)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def cancel(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await self.drain()

    async def close(self) -> None:
        await self.cancel()

    def __repr__(self) -> str:
        return f"InProcess(threads={self.threads})"
