"""The pool manager of LocalProcesses: worker processes on this machine, fed from a Redis list.

One manager, a thread in the session's process, takes frames (:mod:`.frames`) off the pool's
list in batches (``BLMPOP ... COUNT``; it takes more only when it has placed the last batch) and
gives each to an idle warm process or starts a new one (a cold start). A process runs one
invocation at a time and acks on a pipe when it is done; a process idle for ``keep_warm_s`` is
told to exit (the manager decides, so no frame can go to a process that is leaving).

Slots. At most ``max_workers`` processes *compute*. A pinned worker waits on its inbox until its
last task is done; while it waits with nothing to run it is *parked*: it keeps its process but
not its slot. Otherwise two pinned workers waiting for a flexible task that feeds them would
hold both slots of a two-slot pool forever.

Sizes. Each process starts with the memory limit of its first invocation (``memory_mb`` of the
task, enforced by the process as RLIMIT_AS) and only serves invocations with the same limit;
when every slot holds a process of another size, an idle one is retired for a new one.

Deaths. A process that exits while it runs an invocation is counted; with ``requeue_dead`` its
frame goes back to the head of the list (tasks it had finished are not done twice: completion
is idempotent). Without it, recovery is left to the leases and the client's watchdog, as on a
remote platform. A lost server connection is retried with backoff; the manager never gives up
on its own.

The manager never imports the runtime: processes run ``python -m shoal.runtime.process``.

State (:class:`Pool`)
    ``_procs: list[_Proc]``: the live processes, in start order. ``p in _procs`` exactly when
    ``p.alive``; both change together in :meth:`Pool._retire`, with ``_cond`` held.
    ``_cond``: guards ``_procs`` and every field of every ``_Proc`` below; notified on each ack
    and each death, so a manager waiting for a free slot wakes.
    ``_stopping: bool``: set once by :meth:`Pool.stop`; a process dying after it is not a death.
    ``stats: PoolStats``: counters that only grow.
    ``backlog`` (a local of :meth:`Pool.run`): frames taken off the list, not yet placed.
    Invariant: the processes with ``busy and not parked`` number at most ``max_workers`` (a
    frame is placed only when a slot is free).

State (:class:`_Proc`, one per process)
    ``busy``: it holds an invocation, from being handed one until it acks :data:`.ACK_DONE`.
    ``parked``: busy, but waiting on its inbox with nothing to run (holds no slot).
    ``frame``: the frame it runs (or ran last): what is requeued if it dies busy.
    ``memory_mb``: its memory limit, fixed at start; it only gets frames of that size.
    ``idle_since``: monotonic time of its last ack, for ``keep_warm_s``.
    ``alive``: not retired by the manager (its command pipe is open).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..storage import keys
from .frames import ACK_PARKED, ACK_RUNNING, decode_frame, pipe_message

#: How often the manager wakes without work, to retire idle processes and notice a stop.
_TICK_S = 0.5
#: Frames taken off the list in one command when there is a backlog (held until a slot frees).
_TAKE_AT_ONCE = 64


@dataclass
class PoolStats:
    cold_starts: int = 0
    invocations: int = 0
    retired_idle: int = 0
    #: Processes that exited while running an invocation (not ones the manager retired).
    died: int = 0


@dataclass(eq=False)
class _Proc:
    popen: subprocess.Popen[bytes]
    cmd_w: int
    memory_mb: int | None
    frame: bytes
    busy: bool = True
    parked: bool = False
    idle_since: float = field(default_factory=time.monotonic)
    alive: bool = True


class Pool(threading.Thread):
    """The manager thread (see the module docstring); ``env`` is the processes' environment."""

    def __init__(
        self,
        url: str,
        pool_id: str,
        max_workers: int,
        keep_warm_s: float,
        env: dict[str, str],
        *,
        requeue_dead: bool = True,
    ) -> None:
        super().__init__(name=f"shoal-pool-{pool_id}", daemon=True)
        self.url = url
        self.pool_id = pool_id
        self.queue = keys.pool_queue(pool_id)
        self.max_workers = max_workers
        self.keep_warm_s = keep_warm_s
        self.env = env
        self.requeue_dead = requeue_dead
        self.stats = PoolStats()
        self._procs: list[_Proc] = []
        self._cond = threading.Condition()
        self._stopping = False

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
                    backlog.extend(f for f in (reply[1] if reply else []) if f)  # b"": wake-up
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

    def _computing(self) -> int:
        """Processes holding a slot. Called with the condition held."""
        return sum(p.busy and not p.parked for p in self._procs)

    def _free_slots(self) -> int:
        return max(0, self.max_workers - self._computing())

    def _wait_for_free_slot(self) -> int:
        with self._cond:
            free = self._free_slots()
            if free == 0:
                self._cond.wait(_TICK_S)
                free = self._free_slots()
            return free

    def _dispatch(self, frame: bytes) -> None:
        _, memory_mb, _ = decode_frame(frame)
        with self._cond:
            idle = [p for p in self._procs if not p.busy]
            proc = next((p for p in idle if p.memory_mb == memory_mb), None)
            if proc is None and idle and self._computing() + len(idle) >= self.max_workers:
                self._retire(idle[0])  # a slot held by an idle process of another size
            if proc is not None:
                proc.busy = True
                proc.frame = frame
        self.stats.invocations += 1
        if proc is None:
            proc = self._spawn(memory_mb, frame)
        try:
            os.write(proc.cmd_w, pipe_message(frame))
        except OSError:  # it died between its last ack and now: give the frame to a new one
            self._mark_dead(proc)
            os.write(self._spawn(memory_mb, frame).cmd_w, pipe_message(frame))

    def _spawn(self, memory_mb: int | None, frame: bytes) -> _Proc:
        """Starts a process for ``frame`` (busy from the start, so no other frame goes to it)."""
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
        proc = _Proc(popen, cmd_w, memory_mb, frame)
        with self._cond:
            self._procs.append(proc)
        self.stats.cold_starts += 1
        threading.Thread(
            target=self._read_acks, args=(proc, ack_r), name="shoal-pool-acks", daemon=True
        ).start()
        return proc

    def _read_acks(self, proc: _Proc, ack_r: int) -> None:
        """One thread per process: applies its acks, then handles its exit."""
        try:
            while True:
                data = os.read(ack_r, 64)
                if not data:
                    break
                with self._cond:
                    for byte in data:
                        if byte == ACK_PARKED[0]:
                            proc.parked = True
                        elif byte == ACK_RUNNING[0]:
                            proc.parked = False
                        else:  # ACK_DONE
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
                    self._one_command("LPUSH", self.queue, proc.frame)  # first in line
            self._mark_dead(proc)

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
                if not p.busy and now - p.idle_since >= self.keep_warm_s:
                    self.stats.retired_idle += 1
                    self._retire(p)

    # -- shutdown ----------------------------------------------------------------------------

    def stop(self, grace_s: float = 5.0) -> None:
        """Stops the manager, closes every process's pipe (killing those that outlast
        ``grace_s``) and deletes the queue."""
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
