"""A LocalProcesses worker process: ``python -m shoal.runtime.process``.

Started by the pool manager (:mod:`shoal.backends.pool`), with the server's URL in its
environment (``SHOAL_WORKER_REDIS_URL``) and two pipe descriptors: it reads
length-prefixed invocation frames from ``--cmd-fd`` and writes one byte to ``--ack-fd`` after
each (``ACK_DONE``, see :mod:`shoal.backends.frames`), so the manager knows it is idle again;
``ACK_PARKED`` / ``ACK_RUNNING`` say that it is parked on its inbox with nothing to run, or
running again, and ``ACK_TASK`` which task it starts (if the process dies, that task crashed).
It exits when the command pipe closes. User code may print freely: stdout and stderr are the
terminal's, the protocol has its own pipes.

The process keeps a warm state across invocations (function cache, one Redis connection pool,
the clock offset to the server) and stamps events on the server's clock.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import struct
import time

from ..backends.frames import (
    ACK_DONE,
    ACK_PARKED,
    ACK_RUNNING,
    SERVER_URL_VAR,
    decode_frame,
    delivery_copies,
    task_message,
)
from ..backends.local import QueueInvoker
from ..config import Settings
from ..storage.redis import RedisStorage
from .reports import StartInfo
from .worker import WorkerCaches, run_in_thread, run_worker


def _tell(fd: int, byte: bytes) -> None:
    os.write(fd, byte)


def _limit_memory(memory_mb: int) -> None:
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


async def _serve(args: argparse.Namespace) -> None:
    settings = Settings.from_env()
    storage = RedisStorage(os.environ[SERVER_URL_VAR], lease_ttl_s=settings.lease_ttl_s)
    backend = QueueInvoker(storage.client, args.pool, delivery_copies())
    caches = WorkerCaches(clock_offset=await storage.server_time() - time.time())
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(args.cmd_fd, "rb", buffering=0)
    )
    first = True
    try:
        while True:
            try:
                (size,) = struct.unpack(">I", await reader.readexactly(4))
                frame = await reader.readexactly(size)
            except asyncio.IncompleteReadError:
                return  # the manager closed the pipe: retire
            enqueued, _, invocation = decode_frame(frame)
            now = time.time()
            info = StartInfo(
                kind="cold" if first else "warm",
                latency_s=round(now - enqueued, 6),
                process_start_s=round(now - args.spawned_at, 6) if first else None,
                memory_mb=args.memory_mb,
            )
            first = False
            await run_worker(
                invocation,
                storage,
                backend,
                settings=settings,
                caches=caches,
                runner=run_in_thread,
                start_info=info,
                on_park=lambda parked: _tell(args.ack_fd, ACK_PARKED if parked else ACK_RUNNING),
                on_task=lambda run_id, task: _tell(args.ack_fd, task_message(run_id, task)),
            )
            _tell(args.ack_fd, ACK_DONE)
            if caches.tainted:  # a timed-out task's thread still runs: leave, quietly
                await storage.close()
                os._exit(0)
    finally:
        await storage.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m shoal.runtime.process")
    parser.add_argument("--pool", required=True)
    parser.add_argument("--cmd-fd", type=int, required=True)
    parser.add_argument("--ack-fd", type=int, required=True)
    parser.add_argument("--memory-mb", type=int, default=None)
    parser.add_argument("--spawned-at", type=float, default=time.time())
    args = parser.parse_args(argv)
    if args.memory_mb:
        _limit_memory(args.memory_mb)
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
