"""LocalProcesses: a function platform on this machine, the default backend.

Invoking a worker pushes a frame (:mod:`.frames`) onto the pool's Redis list, from the client or
from any worker: they all share the server. The pool manager (:mod:`.pool`), a thread in the
session's process, hands each frame to a warm process or starts one. Runs share the pool, so a
run's end neither waits for nor kills processes.

Two backends live here because both push onto the same list: :class:`LocalProcesses`, what the
session uses (it owns the pool), and :class:`QueueInvoker`, what a worker process uses to invoke
its peers (it only pushes).

Processes get the session's settings in their environment, with the signing secret and the
server's URL (which may hold its password: never on a command line, which every local user can
read), plus one BLAS/OpenMP thread each unless the user set otherwise (as Dask does): processes
are the parallelism, and N processes x N BLAS threads thrash the cores.

State (:class:`LocalProcesses`)
    ``pool_id``: names the pool's list; fixed at construction, so workers of this pool and no
    other take its frames.
    ``_invoker`` / ``_pool``: ``None`` before :meth:`LocalProcesses.start`; ``_pool`` is
    ``None`` again after :meth:`LocalProcesses.close` (the invoker stays, pushing onto a list
    no one reads).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..signing import secret_for_workers
from ..storage import keys
from .base import Capabilities, Resources
from .cpu import probe
from .frames import delivery_copies_env, encode_frame
from .pool import Pool, PoolStats

if TYPE_CHECKING:
    from ..config import Settings
    from ..storage.base import Storage

_ONE_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_CAPABILITIES = Capabilities(max_payload=None, warm_reuse=True)


class QueueInvoker:
    """Invokes workers by pushing frames onto a pool's list (used by worker processes).

    ``copies`` > 1 delivers every invocation that many times: fault injection, as a platform
    with at-least-once delivery may do (``LocalProcesses(duplicate_deliveries=True)``)."""

    name = "local-queue"

    def __init__(
        self, client: Any, pool_id: str, copies: int = 1, parallelism: int | None = None
    ) -> None:
        self._r = client
        self.queue = keys.pool_queue(pool_id)
        self.copies = copies
        self.capabilities = replace(_CAPABILITIES, parallelism=parallelism)

    async def start(self, storage: Storage, settings: Settings) -> None:
        return None

    async def invoke(self, invocation: bytes, resources: Resources | None) -> None:
        await self.invoke_many([(invocation, resources)])

    async def invoke_many(self, items: Sequence[tuple[bytes, Resources | None]]) -> None:
        if items:
            frames = [encode_frame(i, r) for i, r in items for _ in range(self.copies)]
            await self._r.rpush(self.queue, *frames)

    async def queued(self) -> int:
        return 0

    async def drain(self) -> None:
        return None

    async def cancel(self, run_id: str) -> None:
        return None

    async def close(self) -> None:
        return None


class LocalProcesses:
    """Worker processes on this machine, fed through a Redis list (see the module docstring)."""

    name = "local"

    def __init__(
        self,
        max_workers: int | None = None,
        keep_warm_s: float = 10.0,
        *,
        duplicate_deliveries: bool = False,
        requeue_dead: bool = True,
        abandon_grace_s: float = 5.0,
        cpu_shares: bool = True,
    ) -> None:
        if max_workers is not None and (not isinstance(max_workers, int) or max_workers < 1):
            raise ConfigError(f"max_workers must be a positive integer, got {max_workers!r}")
        if not isinstance(keep_warm_s, int | float) or keep_warm_s < 0:
            raise ConfigError(f"keep_warm_s must be >= 0 seconds, got {keep_warm_s!r}")
        if not isinstance(abandon_grace_s, int | float) or abandon_grace_s < 0:
            raise ConfigError(f"abandon_grace_s must be >= 0 seconds, got {abandon_grace_s!r}")
        #: How long a process may stay in a task of a run that gave up before it is killed.
        self.abandon_grace_s = float(abandon_grace_s)
        self.max_workers = max_workers or os.cpu_count() or 1
        self.keep_warm_s = float(keep_warm_s)
        #: Fault injection (tests): every invocation is delivered twice.
        self.duplicate_deliveries = duplicate_deliveries
        #: Give a dead process's invocation back to the queue at once. Without it, recovery is
        #: left to the leases and the client's watchdog, as on a remote platform.
        self.requeue_dead = requeue_dead
        self.capabilities = replace(
            _CAPABILITIES, redelivers=requeue_dead, parallelism=self.max_workers
        )
        #: Sized workers get Lambda's CPU share (1 vCPU per 1,769 MB) where cgroups allow it
        #: (``backends/cpu.py``); False: memory only.
        self.cpu_shares = bool(cpu_shares)
        self.pool_id = uuid.uuid4().hex[:12]
        self._invoker: QueueInvoker | None = None
        self._pool: Pool | None = None

    @property
    def enforces_cpu(self) -> bool:
        """Whether sized workers get their CPU share here (a writable cgroup hierarchy)."""
        if not self.cpu_shares:
            return False
        if self._pool is not None:
            return self._pool.cpu_groups is not None
        return probe()[0] is not None

    @property
    def warm_processes(self) -> int:
        """Idle worker processes now (the next invocations start warm on them)."""
        return self._pool.idle() if self._pool else 0

    @property
    def stats(self) -> PoolStats:
        return self._pool.stats if self._pool else PoolStats()

    async def start(self, storage: Storage, settings: Settings) -> None:
        url = getattr(storage, "url", None)
        client = getattr(storage, "client", None)
        if url is None or client is None:
            raise ConfigError("the LocalProcesses backend needs a Redis storage (redis_url)")
        copies = 2 if self.duplicate_deliveries else 1
        self._invoker = QueueInvoker(client, self.pool_id, copies, self.max_workers)
        env = {
            **{v: "1" for v in _ONE_THREAD_VARS},
            **os.environ,
            **settings.to_env(),
            **delivery_copies_env(copies),
            **secret_for_workers(),  # SHOAL_SECRET, or this process's own: workers sign too
        }
        self._pool = Pool(
            url,
            self.pool_id,
            self.max_workers,
            self.keep_warm_s,
            env,
            requeue_dead=self.requeue_dead,
            lease_ttl_s=settings.lease_ttl_s,
            cpu_shares=self.cpu_shares,
        )
        self._pool.start()

    def _need_invoker(self) -> QueueInvoker:
        if self._invoker is None:
            raise RuntimeError("LocalProcesses backend used before start()")
        return self._invoker

    async def invoke(self, invocation: bytes, resources: Resources | None) -> None:
        await self._need_invoker().invoke(invocation, resources)

    async def invoke_many(self, items: Sequence[tuple[bytes, Resources | None]]) -> None:
        await self._need_invoker().invoke_many(items)

    async def queued(self) -> int:
        """Frames on the pool's list, plus those the manager holds that no process has started
        a task of yet."""
        if self._pool is None:
            return 0
        client: Any = self._need_invoker()._r
        waiting: int = await client.llen(keys.pool_queue(self.pool_id))
        return waiting + self._pool.starting()

    async def drain(self) -> None:
        """Runs are independent on a shared pool: a run's end does not wait for the pool."""
        return None

    async def settle_output(self) -> None:
        """Returns once what the processes printed so far is printed here (the client calls it
        as a run ends, so a run's output shows before its result)."""
        if self._pool is not None:
            await asyncio.to_thread(self._pool.settle_output)

    async def cancel(self, run_id: str) -> None:
        """Processes still in a task of the run after ``abandon_grace_s`` are killed (a hung
        task would hold its slot forever); the others find the run ended and move on (the
        storage refuses writes to an ended run). Other runs' processes are left alone."""
        if self._pool is not None:
            self._pool.abandon(run_id, self.abandon_grace_s)

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.stop()
            self._pool = None

    def __repr__(self) -> str:
        return f"LocalProcesses(max_workers={self.max_workers}, keep_warm_s={self.keep_warm_s})"
