"""LocalProcesses: a function platform on this machine, the default backend.

Invoking a worker pushes a frame onto the pool's Redis list, from the client or from any worker
(they all share the server). One pool manager, a thread in the session's process, takes frames
off the list in batches (``BLMPOP ... COUNT``; it takes more only when it has placed the last
batch) and gives each to an idle warm process or starts a new one (a cold start), up to
``max_workers`` processes. A process
runs one invocation at a time and tells the manager on a pipe when it is done; a process idle
for ``keep_warm_s`` is told to exit (the manager decides, so no frame can go to a process that
is leaving).

A pinned worker waits on its inbox until its last task is done. While it waits with nothing to
run it is *parked*: it keeps its process but not its slot, so ``max_workers`` bounds the
processes that compute. Otherwise two pinned workers waiting for a flexible task that feeds
them would hold both slots of a two-slot pool forever.

Each process starts with the memory limit of its first invocation (``memory_mb`` of the task,
enforced as RLIMIT_AS) and only serves invocations with the same limit; when every slot holds a
process of another size, an idle one is retired for a new one.

Frames are ``enqueue time (f64) | memory_mb (u32, 0 = none) | invocation``: a worker measures its
start latency (queue wait, plus the process start when cold) against the enqueue time.

The backend never imports the runtime: processes run ``python -m shoal.runtime.process``.
"""

from __future__ import annotations

import contextlib
import os
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..storage import keys
from .base import Capabilities, Resources

if TYPE_CHECKING:
    from ..config import Settings
    from ..storage.base import Storage

_FRAME_HEADER = struct.Struct(">dI")
_COPIES_VAR = "SHOAL_POOL_DELIVERY_COPIES"
_ONE_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
#: How often the manager wakes without work, to retire idle processes and notice a stop.
_TICK_S = 0.5
#: Frames taken off the list in one command when there is a backlog (held until a slot frees).
_TAKE_AT_ONCE = 64


def encode_frame(invocation: bytes, resources: Resources | None) -> bytes:
    mb = (resources.memory_mb if resources else None) or 0
    return _FRAME_HEADER.pack(time.time(), mb) + invocation


def delivery_copies() -> int:
    """In a worker process: how many times its pool delivers each invocation."""
    return max(1, int(os.environ.get(_COPIES_VAR, "1")))


def decode_frame(frame: bytes) -> tuple[float, int | None, bytes]:
    enqueued, mb = _FRAME_HEADER.unpack_from(frame)
    return enqueued, (mb or None), frame[_FRAME_HEADER.size :]


class QueueInvoker:
    """Invokes workers by pushing frames onto a pool's list (used by worker processes).

    ``copies`` > 1 delivers every invocation that many times: fault injection, as a platform
    with at-least-once delivery may do (``LocalProcesses(duplicate_deliveries=True)``)."""

    name = "local-queue"
    capabilities = Capabilities(max_payload=None, warm_reuse=True)

    def __init__(self, client: Any, pool_id: str, copies: int = 1) -> None:
        self._r = client
        self.queue = keys.pool_queue(pool_id)
        self.copies = copies

    async def start(self, storage: Storage, settings: Settings) -> None:
        return None

    async def invoke(self, invocation: bytes, resources: Resources | None) -> None:
        await self.invoke_many([(invocation, resources)])

    async def invoke_many(self, items: Sequence[tuple[bytes, Resources | None]]) -> None:
        if items:
            frames = [encode_frame(i, r) for i, r in items for _ in range(self.copies)]
            await self._r.rpush(self.queue, *frames)

    async def drain(self) -> None:
        return None

    async def cancel(self) -> None:
        return None

    async def close(self) -> None:
        return None


@dataclass
class PoolStats:
    cold_starts: int = 0
    invocations: int = 0
    retired_idle: int = 0
    died: int = 0


class LocalProcesses:
    """Worker processes on this machine, fed through a Redis list (see the module docstring)."""

    name = "local"
    capabilities = Capabilities(max_payload=None, warm_reuse=True)

    def __init__(
        self,
        max_workers: int | None = None,
        keep_warm_s: float = 10.0,
        *,
        duplicate_deliveries: bool = False,
        requeue_dead: bool = True,
    ) -> None:
        if max_workers is not None and (not isinstance(max_workers, int) or max_workers < 1):
            raise ConfigError(f"max_workers must be a positive integer, got {max_workers!r}")
        if not isinstance(keep_warm_s, int | float) or keep_warm_s < 0:
            raise ConfigError(f"keep_warm_s must be >= 0 seconds, got {keep_warm_s!r}")
        self.max_workers = max_workers or os.cpu_count() or 1
        self.keep_warm_s = float(keep_warm_s)
        #: Fault injection (tests): every invocation is delivered twice.
        self.duplicate_deliveries = duplicate_deliveries
        #: Give a dead process's invocation back to the queue at once. Without it, recovery is
        #: left to the leases and the client's watchdog, as on a remote platform.
        self.requeue_dead = requeue_dead
        self.pool_id = uuid.uuid4().hex[:12]
        self._invoker: QueueInvoker | None = None
        self._pool: _Pool | None = None

    @property
    def stats(self) -> PoolStats:
        return self._pool.stats if self._pool else PoolStats()

    async def start(self, storage: Storage, settings: Settings) -> None:
        url = getattr(storage, "url", None)
        client = getattr(storage, "client", None)
        if url is None or client is None:
            raise ConfigError("the LocalProcesses backend needs a Redis storage (redis_url)")
        copies = 2 if self.duplicate_deliveries else 1
        self._invoker = QueueInvoker(client, self.pool_id, copies)
        # One BLAS/OpenMP thread per process unless the user says otherwise (as Dask does):
        # processes are the parallelism, and N processes x N BLAS threads thrash the cores.
        env = {**{v: "1" for v in _ONE_THREAD_VARS}, **os.environ, **settings.to_env()}
        env[_COPIES_VAR] = str(copies)
        self._pool = _Pool(url, self.pool_id, self.max_workers, self.keep_warm_s, env)
        self._pool.requeue_dead = self.requeue_dead
        self._pool.start()

    def _need_invoker(self) -> QueueInvoker:
        if self._invoker is None:
            raise RuntimeError("LocalProcesses backend used before start()")
        return self._invoker

    async def invoke(self, invocation: bytes, resources: Resources | None) -> None:
        await self._need_invoker().invoke(invocation, resources)

    async def invoke_many(self, items: Sequence[tuple[bytes, Resources | None]]) -> None:
        await self._need_invoker().invoke_many(items)

    async def drain(self) -> None:
        """Runs are independent on a shared pool: a run's end does not wait for the pool."""
        return None

    async def cancel(self) -> None:
        """Other runs may share the pool, so nothing is killed; workers of a failed run find it
        ended and change nothing (the storage refuses writes to an ended run)."""
        return None

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.stop()
            self._pool = None

    def __repr__(self) -> str:
        return f"LocalProcesses(max_workers={self.max_workers}, keep_warm_s={self.keep_warm_s})"


@dataclass(eq=False)
class _Proc:
    popen: subprocess.Popen[bytes]
    cmd_w: int
    memory_mb: int | None
    busy: bool = True
    parked: bool = False
    #: The frame it runs (given back to the queue if the process dies with it).
    frame: bytes = b""
    idle_since: float = field(default_factory=time.monotonic)
    alive: bool = True


class _Pool(threading.Thread):
    def __init__(
        self, url: str, pool_id: str, max_workers: int, keep_warm_s: float, env: dict[str, str]
    ) -> None:
        super().__init__(name=f"shoal-pool-{pool_id}", daemon=True)
        self.url = url
        self.pool_id = pool_id
        self.queue = keys.pool_queue(pool_id)
        self.max_workers = max_workers
        self.keep_warm_s = keep_warm_s
        self.env = env
        self.stats = PoolStats()
        self._procs: list[_Proc] = []
        self._cond = threading.Condition()
        self._stopping = False
        self.requeue_dead = True

    # -- manager loop ------------------------------------------------------------------------

    def run(self) -> None:
        import redis

        r: Any = redis.Redis.from_url(self.url, socket_timeout=None)
        backlog: deque[bytes] = deque()
        failing_since: float | None = None
        try:
            while not self._stopping:
                try:
                    while backlog and self._wait_for_free_slot():
                        self._dispatch(backlog.popleft())
                    if backlog:
                        continue  # every slot busy: wait for one before taking more
                    reply = r.execute_command(
                        "BLMPOP", _TICK_S, 1, self.queue, "LEFT", "COUNT", _TAKE_AT_ONCE
                    )
                    failing_since = None
                    backlog.extend(f for f in (reply[1] if reply else []) if f)  # b"": stop
                    self._retire_idle()
                except (redis.ConnectionError, redis.TimeoutError) as e:
                    # The server restarts or blips: keep trying; waiting runs see their own
                    # errors (and their run timeouts) meanwhile.
                    now = time.monotonic()
                    if failing_since is None:
                        failing_since = now
                        print(
                            f"shoal: worker pool lost the server ({e}); retrying", file=sys.stderr
                        )
                    time.sleep(min(1.0, 0.05 * 2 ** min(5, int(now - failing_since))))
        except Exception as e:
            if not self._stopping:
                print(f"shoal: local worker pool stopped: {type(e).__name__}: {e}", file=sys.stderr)
        finally:
            r.close()

    def _wait_for_free_slot(self) -> int:
        with self._cond:
            free = self._free_slots()
            if free == 0:
                self._cond.wait(_TICK_S)
                free = self._free_slots()
            return free

    def _free_slots(self) -> int:
        computing = sum(p.busy and not p.parked for p in self._procs if p.alive)
        return max(0, self.max_workers - computing)

    def _dispatch(self, frame: bytes) -> None:
        _, memory_mb, _ = decode_frame(frame)
        with self._cond:
            live = [p for p in self._procs if p.alive]
            proc = next((p for p in live if not p.busy and p.memory_mb == memory_mb), None)
            idle = [p for p in live if not p.busy]
            computing = sum(p.busy and not p.parked for p in live)
            if proc is None and idle and computing + len(idle) >= self.max_workers:
                self._retire(idle[0])  # a slot held by an idle process of another size
            if proc is not None:
                proc.busy = True
                proc.frame = frame
        self.stats.invocations += 1
        if proc is None:
            proc = self._spawn(memory_mb)
            proc.frame = frame
        try:
            os.write(proc.cmd_w, struct.pack(">I", len(frame)) + frame)
        except OSError:  # it died between its last ack and now: give the frame to a new one
            self._mark_dead(proc)
            proc = self._spawn(memory_mb)
            proc.frame = frame
            os.write(proc.cmd_w, struct.pack(">I", len(frame)) + frame)

    def _spawn(self, memory_mb: int | None) -> _Proc:
        cmd_r, cmd_w = os.pipe()
        ack_r, ack_w = os.pipe()
        args = [
            sys.executable, "-m", "shoal.runtime.process",
            "--redis", self.url,
            "--pool", self.pool_id,
            "--cmd-fd", str(cmd_r),
            "--ack-fd", str(ack_w),
            "--spawned-at", repr(time.time()),
        ]  # fmt: skip
        if memory_mb:
            args += ["--memory-mb", str(memory_mb)]
        popen = subprocess.Popen(args, pass_fds=(cmd_r, ack_w), env=self.env, close_fds=True)
        os.close(cmd_r)
        os.close(ack_w)
        proc = _Proc(popen, cmd_w, memory_mb)
        with self._cond:
            self._procs.append(proc)
        self.stats.cold_starts += 1
        threading.Thread(
            target=self._read_acks, args=(proc, ack_r), name="shoal-pool-acks", daemon=True
        ).start()
        return proc

    def _read_acks(self, proc: _Proc, ack_r: int) -> None:
        try:
            while True:
                data = os.read(ack_r, 64)
                if not data:
                    break
                with self._cond:
                    for byte in data:
                        if byte == ord("P"):
                            proc.parked = True
                        elif byte == ord("R"):
                            proc.parked = False
                        else:
                            proc.busy = proc.parked = False
                            proc.idle_since = time.monotonic()
                    self._cond.notify_all()
        finally:
            os.close(ack_r)
            proc.popen.wait()
            if proc.alive and proc.busy and not self._stopping:
                self.stats.died += 1
                then = "it goes back to the queue" if self.requeue_dead else "leases will tell"
                print(
                    f"shoal: worker process {proc.popen.pid} died (exit code "
                    f"{proc.popen.returncode}) while running an invocation; {then}",
                    file=sys.stderr,
                )
                if self.requeue_dead:
                    self._requeue(proc.frame)
            self._mark_dead(proc)

    def _requeue(self, frame: bytes) -> None:
        """Gives a dead process's invocation back to the queue, first in line. Tasks it had
        finished are not done twice (completion is idempotent); the rest is redone."""
        self._one_command("LPUSH", self.queue, frame)

    def _one_command(self, *command: Any) -> None:
        """A best-effort command on a short-lived connection (off the manager's own one)."""
        import redis

        with contextlib.suppress(Exception):
            r: Any = redis.Redis.from_url(self.url, socket_timeout=5)
            try:
                r.execute_command(*command)
            finally:
                r.close()

    def _mark_dead(self, proc: _Proc) -> None:
        with self._cond:
            self._retire(proc)
            self._cond.notify_all()

    def _retire(self, proc: _Proc) -> None:
        """Closes a process's command pipe (an idle one exits when it reads the end of it) and
        forgets it. Called with the condition held."""
        if proc.alive:
            proc.alive = False
            with contextlib.suppress(OSError):
                os.close(proc.cmd_w)
        if proc in self._procs:
            self._procs.remove(proc)

    def _retire_idle(self) -> None:
        now = time.monotonic()
        with self._cond:
            for p in list(self._procs):
                if p.alive and not p.busy and now - p.idle_since >= self.keep_warm_s:
                    self.stats.retired_idle += 1
                    self._retire(p)

    # -- shutdown ----------------------------------------------------------------------------

    def stop(self, grace_s: float = 5.0) -> None:
        self._stopping = True
        self._one_command("RPUSH", self.queue, b"")  # wake the manager now, not at its next tick
        self.join(grace_s)
        with self._cond:
            procs = list(self._procs)
            for p in procs:
                self._retire(p)
        deadline = time.monotonic() + grace_s
        for p in procs:
            try:
                p.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.popen.kill()
                p.popen.wait()
        self._one_command("DEL", self.queue)
