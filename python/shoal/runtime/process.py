"""A LocalProcesses worker process: ``python -m shoal.runtime.process``.

Started by the pool manager (:mod:`shoal.backends.pool`), with the server's URL in its
environment (``SHOAL_WORKER_REDIS_URL``) and two pipe descriptors: it reads
length-prefixed invocation frames from ``--cmd-fd`` and writes one byte to ``--ack-fd`` after
each (``ACK_DONE``, see :mod:`shoal.backends.frames`), so the manager knows it is idle again;
``ACK_PARKED`` / ``ACK_RUNNING`` say that it is parked on its inbox with nothing to run, or
running again; it writes each task it starts into its task slot (``--task-fd``: if the process
dies, that task crashed).
It exits when the command pipe closes. User code may print freely: stdout and stderr are pipes
to the pool, which prints each line in the client, prefixed with the task that wrote it
(:mod:`.output`); the protocol has its own pipes.

The process keeps a warm state across invocations (function cache, one Redis connection pool,
the clock offset to the server) and stamps events on the server's clock. Its event loop is
uvloop's where installed (a dependency on Linux and macOS; ``SHOAL_UVLOOP=0`` turns it off,
for A/B measurements), else asyncio's own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

from .. import lifetime
from ..backends.cpu import join
from ..backends.frames import (
    ACK_DONE,
    ACK_PARKED,
    ACK_RUNNING,
    PIPE_HEADER,
    SERVER_URL_VAR,
    decode_frame,
    delivery_copies,
    task_slot,
)
from ..backends.local import QueueInvoker
from ..config import Settings
from ..storage.redis import RedisStorage
from . import output
from .reports import StartInfo
from .worker import Runner, WorkerCaches, run_in_thread, run_worker


def _tell(fd: int, byte: bytes) -> None:
    os.write(fd, byte)


def _note_task(fd: int, run_id: str, task: int) -> None:
    os.pwrite(fd, task_slot(run_id, task), 0)  # one syscall; nobody is woken


#: Address space a worker needs beyond what it holds after its imports (a thread's stack,
#: the event loop, a connection): below that a limit fails the worker, not the task.
_HEADROOM_MB = 32


def _limit_memory(memory_mb: int) -> str | None:
    """Applies the limit, or says why it cannot work: a limit below what the process already
    holds would fail allocations anywhere, in shoal's own code as much as in the task."""
    held_mb = _address_space_mb()
    if held_mb is not None and memory_mb < held_mb + _HEADROOM_MB:
        return (
            f"memory_mb={memory_mb} is too small for a worker process: it holds {held_mb} MB "
            f"of address space before running anything and needs about {_HEADROOM_MB} MB "
            f"more; give the task at least memory_mb={held_mb + _HEADROOM_MB}"
        )
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return None


def _address_space_mb() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[0])
    except OSError:  # not Linux: the limit is applied as asked
        return None
    return pages * resource.getpagesize() // (1024 * 1024)


def _refusing(message: str) -> Runner:
    """Fails every task as a MemoryError naming its memory_mb (see ``_limit_memory``)."""

    async def run(call: Callable[[], object]) -> object:
        raise MemoryError(message)

    return run


async def _serve(args: argparse.Namespace, runner: Runner) -> None:
    settings = Settings.from_env()
    storage = RedisStorage(
        os.environ[SERVER_URL_VAR], lease_ttl_s=settings.lease_ttl_s, name="shoal-worker"
    )
    backend = QueueInvoker(storage.client, args.pool, delivery_copies(), args.slots)
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
                size, handed = PIPE_HEADER.unpack(await reader.readexactly(PIPE_HEADER.size))
                frame = await reader.readexactly(size)
            except asyncio.IncompleteReadError:
                return  # the manager closed the pipe: retire
            enqueued, _, invocation = decode_frame(frame)
            now = time.time()
            info = StartInfo(
                kind="cold" if first else "warm",
                latency_s=round(now - handed, 6),
                queued_s=round(max(0.0, handed - enqueued), 6),
                process_start_s=round(now - args.spawned_at, 6) if first else None,
                memory_mb=args.memory_mb,
                cpu=args.cpu,
            )
            first = False
            await run_worker(
                invocation,
                storage,
                backend,
                settings=settings,
                caches=caches,
                runner=runner,
                start_info=info,
                on_park=lambda parked: _tell(args.ack_fd, ACK_PARKED if parked else ACK_RUNNING),
                on_task=lambda run_id, task: _note_task(args.task_fd, run_id, task),
            )
            os.pwrite(args.task_fd, task_slot("", None), 0)  # between tasks again
            _tell(args.ack_fd, ACK_DONE)
            if caches.tainted:  # a timed-out task's thread still runs: leave, quietly
                await storage.close()
                os._exit(0)
    finally:
        await storage.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m shoal.runtime.process")
    parser.add_argument("--pool", required=True)
    parser.add_argument("--slots", type=int, default=None)  # the pool's parallelism
    parser.add_argument("--cmd-fd", type=int, required=True)
    parser.add_argument("--ack-fd", type=int, required=True)
    parser.add_argument("--task-fd", type=int, required=True)
    parser.add_argument("--memory-mb", type=int, default=None)
    parser.add_argument("--cgroup", default=None)  # its CPU group, joined first
    parser.add_argument("--cpu", type=float, default=None)  # that group's share
    parser.add_argument("--spawned-at", type=float, default=time.time())
    args = parser.parse_args(argv)
    lifetime.die_with_parent()  # the pool's client may be killed outright
    if args.cgroup:
        try:
            join(args.cgroup)
        except OSError as e:  # run all the same; the size says it was not enforced
            print(f"shoal: CPU share not enforced: {e}", file=sys.stderr)
            args.cpu = None
    output.prefix_output()
    refusal = _limit_memory(args.memory_mb) if args.memory_mb else None
    serve = _serve(args, run_in_thread if refusal is None else _refusing(refusal))
    uvloop = None if os.environ.get("SHOAL_UVLOOP") == "0" else _uvloop()
    if uvloop is not None:  # 3-8 % less per task than asyncio's own loop (docs/benchmarks.md)
        uvloop.run(serve)
    else:
        asyncio.run(serve)


def _uvloop() -> Any:
    try:
        import uvloop
    except ImportError:  # not on this platform: asyncio's loop does the same, a little slower
        return None
    return uvloop


if __name__ == "__main__":
    main()
