"""The pool manager of LocalProcesses: worker processes on this machine, fed from a Redis list.

One manager, a thread in the session's process, takes frames (:mod:`.frames`) off the pool's
list (``BLMPOP ... COUNT``), as many as there are free slots plus ``prefetch`` (16 per slot:
a slot that frees gets its next frame without a round trip), and gives each to an idle warm
process or starts a new one (a cold start). The rest wait on the server's list, not in the
manager's memory: a manager that dies loses at most those few, and their hand-off leases (see
:func:`shoal.storage.keys.leases`) bring them back. A process runs one
invocation at a time and acks on a pipe when it is done; a process idle for ``keep_warm_s`` is
told to exit (the manager decides, so no frame can go to a process that is leaving).

Slots. At most ``max_workers`` processes *compute*. A pinned worker waits on its inbox until its
last task is done; while it waits with nothing to run it is *parked*: it keeps its process but
not its slot. Otherwise two pinned workers waiting for a flexible task that feeds them would
hold both slots of a two-slot pool forever.

Sizes. Each process starts with the memory limit of its first invocation (``memory_mb`` of the
task, enforced by the process as RLIMIT_AS) and only serves invocations with the same limit;
when every slot holds a process of another size, an idle one is retired for a new one.

Deaths. A process that exits while it runs an invocation is counted. A process writes which
task it starts into its task slot (:func:`.task_slot`), so the death is reported to the run as
a crash of that task, with its exit code or signal (the ``CRASHED`` script: the task's crash
record and TASK_CRASHED; a task that crashed its workers too often is failed by the next worker
to start it). With ``requeue_dead`` the frame then goes back to the head of the list (tasks it
had finished are not done twice: completion is idempotent), unless the run has ended. Without
it, recovery is left to the leases and the client's watchdog, as on a remote platform. A frame
whose processes die before starting any task (one that cannot even start) fails its run after
:data:`_EARLY_DEATHS` deaths. A lost server connection is retried with backoff; the manager
never gives up on its own.

The manager never imports the runtime's logic: processes run ``python -m shoal.runtime.process``
(it reads the invocation format only to name the run of a frame that cannot start).

State (:class:`Pool`)
    ``_procs: list[_Proc]``: the live processes, in start order. ``p in _procs`` exactly when
    ``p.alive``; both change together in :meth:`Pool._retire`, with ``_cond`` held.
    ``_cond``: guards ``_procs`` and every field of every ``_Proc`` below; notified on each ack
    and each death, so a manager waiting for a free slot wakes.
    ``_stopping: bool``: set once by :meth:`Pool.stop`; a process dying after it is not a death.
    ``stats: PoolStats``: counters that only grow.
    ``backlog`` (a local of :meth:`Pool.run`): frames taken off the list, not yet placed: at
    most the free slots plus ``prefetch`` when they were taken.
    ``_early_deaths``: frame -> processes that died running it before any task started.
    Invariant: the processes with ``busy and not parked`` number at most ``max_workers`` (a
    frame is placed only when a slot is free).

State (:class:`_Proc`, one per process)
    ``busy``: it holds an invocation, from being handed one until it acks :data:`.ACK_DONE`.
    ``parked``: busy, but waiting on its inbox with nothing to run (holds no slot).
    ``frame``: the frame it runs (or ran last): what is requeued if it dies busy.
    ``memory_mb``: its memory limit, fixed at start; it only gets frames of that size.
    ``idle_since``: monotonic time of its last ack, for ``keep_warm_s``.
    ``alive``: not retired by the manager (its command pipe is open).
    ``slot``: its task slot (an unlinked file): :meth:`_Proc.running` reads the (run id, task)
    it started last in this invocation, or None before its first one (it is then still
    starting: :meth:`Pool.starting` counts it) and between invocations.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..storage import keys, scripts
from ..storage.base import ErrorRecord
from .cpu import CpuGroups, lambda_cpu, probe
from .frames import (
    ACK_DONE,
    ACK_PARKED,
    ACK_RUNNING,
    SERVER_URL_VAR,
    TASK_SLOT_SIZE,
    decode_frame,
    pipe_message,
    read_task_slot,
    task_slot,
)

log = logging.getLogger("shoal.pool")

#: How often the manager wakes without work, to retire idle processes and notice a stop.
_TICK_S = 0.5
#: Frames in hand per slot beyond the free ones (at 1, tree-1k took 500 BLMPOPs and ran ~6 %
#: slower end to end; they are covered by their hand-off leases all the same).
_PREFETCH_PER_SLOT = 16
#: A frame whose processes die this often before any task starts is dropped (it cannot start).
_EARLY_DEATHS = 3


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
    slot: Any = None  # a file object (tempfile.TemporaryFile)
    output: Any = None  # its _Output forwarder
    #: Its CPU group (see ``backends/cpu.py``), removed when it ends.
    group: Any = None

    def running(self) -> tuple[str, int] | None:
        """(run id, task) the process says it runs now (read from its task slot)."""
        return read_task_slot(os.pread(self.slot.fileno(), TASK_SLOT_SIZE, 0))

    #: Killed by the manager: its run gave up while it was still in one of its tasks.
    stopped: bool = False


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
        lease_ttl_s: float = 5.0,
        cpu_shares: bool = True,
    ) -> None:
        super().__init__(name=f"shoal-pool-{pool_id}", daemon=True)
        #: CPU groups of sized processes (None: shares off, or not enforceable here).
        self.cpu_groups: CpuGroups | None = None
        #: Why sized processes run without a CPU limit (None: they have one, or shares off).
        self.cpu_unenforced: str | None = None
        if cpu_shares:
            hierarchy, why = probe()
            if hierarchy is None:
                self.cpu_unenforced = why
                _warn_once(
                    f"shoal: worker CPU shares are not enforced ({why}); sizes count as memory only"
                )
            else:
                self.cpu_groups = CpuGroups(pool_id, hierarchy)
        self.lease_ttl_s = lease_ttl_s
        #: Frames taken beyond the free slots, so a slot that frees gets one without waiting
        #: for a round trip to the server, and a fan-out's thousand frames come in a few takes.
        self.prefetch = _PREFETCH_PER_SLOT * max_workers
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
        self._early_deaths: dict[bytes, int] = {}
        self._placing = 0
        #: Runs that gave up -> monotonic time after which their processes are killed.
        self._abandoned: dict[str, float] = {}

    # -- manager loop ------------------------------------------------------------------------

    def run(self) -> None:
        import redis

        r: Any = redis.Redis.from_url(self.url, socket_timeout=None, client_name="shoal-pool")
        backlog: deque[bytes] = deque()
        failing_since: float | None = None
        try:
            while not self._stopping:
                try:
                    self._kill_abandoned()  # first: hung processes may hold every slot
                    while backlog and self._wait_for_free_slot():
                        self._dispatch(backlog.popleft())
                    self._placing = len(backlog)
                    with self._cond:
                        room = self._free_slots() + self.prefetch - len(backlog)
                    if room <= 0:
                        continue  # enough in hand: the rest wait on the server
                    if backlog:  # top up without waiting
                        reply = r.execute_command("LMPOP", 1, self.queue, "LEFT", "COUNT", room)
                    else:
                        reply = r.execute_command(
                            "BLMPOP", _TICK_S, 1, self.queue, "LEFT", "COUNT", room
                        )
                    failing_since = None
                    backlog.extend(f for f in (reply[1] if reply else []) if f)  # b"": wake-up
                    self._placing = len(backlog)
                    self._retire_idle()
                except (redis.ConnectionError, redis.TimeoutError) as e:
                    # The server restarts or blips: keep trying; waiting runs see their own
                    # errors (and their run timeouts) meanwhile.
                    now = time.monotonic()
                    if failing_since is None:
                        failing_since = now
                        log.warning("shoal: worker pool lost the server (%s); retrying", e)
                    time.sleep(min(1.0, 0.05 * 2 ** min(5, int(now - failing_since))))
        except Exception as e:
            if not self._stopping:
                log.error("shoal: local worker pool stopped: %s: %s", type(e).__name__, e)
        finally:
            r.close()

    def starting(self) -> int:
        """Frames this manager holds that no process has started a task of yet (taken off the
        list, or handed to a process still starting)."""
        with self._cond:
            return self._placing + sum(
                p.busy and not p.parked and p.running() is None for p in self._procs
            )

    def idle(self) -> int:
        """Live processes waiting for work (a new invocation would start warm on one)."""
        with self._cond:
            return sum(p.alive and not p.busy for p in self._procs)

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
        slot = tempfile.TemporaryFile()  # noqa: SIM115 (lives with the process; unlinked)
        slot.write(task_slot("", None))
        slot.flush()
        args = [
            sys.executable, "-m", "shoal.runtime.process",
            "--pool", self.pool_id,
            "--slots", str(self.max_workers),
            "--cmd-fd", str(cmd_r),
            "--ack-fd", str(ack_w),
            "--task-fd", str(slot.fileno()),
            "--spawned-at", repr(time.time()),
        ]  # fmt: skip
        if memory_mb:
            args += ["--memory-mb", str(memory_mb)]
        group = None
        if memory_mb and self.cpu_groups is not None:
            cpu = lambda_cpu(memory_mb)
            try:
                group = self.cpu_groups.make(cpu)
                args += ["--cgroup", str(group), "--cpu", repr(cpu)]
            except OSError as e:
                _warn_once(f"shoal: worker CPU shares are not enforced ({e})")
        env = {**self.env, SERVER_URL_VAR: self.url}  # not in argv: `ps` shows that to everyone
        fds = (cmd_r, ack_w, slot.fileno())
        popen = subprocess.Popen(
            args,
            pass_fds=fds,
            env=env,
            close_fds=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        os.close(cmd_r)
        os.close(ack_w)
        proc = _Proc(popen, cmd_w, memory_mb, frame, slot=slot, output=_Output(popen), group=group)
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
                        elif byte == ACK_DONE[0]:
                            proc.busy = proc.parked = False
                            self._early_deaths.pop(proc.frame, None)
                            proc.idle_since = time.monotonic()
                    self._cond.notify_all()
        finally:
            os.close(ack_r)
            proc.popen.wait()
            if proc.alive and proc.busy and not self._stopping and not proc.stopped:
                self._died(proc)
            self._mark_dead(proc)
            proc.slot.close()
            if proc.group is not None and self.cpu_groups is not None:
                self.cpu_groups.remove(proc.group)

    def _died(self, proc: _Proc) -> None:
        """A process exited while it ran an invocation: report the crash, maybe requeue."""
        self.stats.died += 1
        how = _how_it_died(proc.popen.returncode, proc.memory_mb)
        pid = proc.popen.pid
        requeue = self.requeue_dead
        running = proc.running()
        if running is not None:
            run_id, task = running
            worker = f"{os.uname().nodename}:{pid}"
            args = [task, how, worker, int(requeue), int(self.lease_ttl_s * 1000)]
            count = self._script(scripts.CRASHED, keys.crash_keys(run_id), args)
            if count == -1:  # the run has ended: nothing to run again
                requeue = False
            what = f"task {task} of run {run_id}"
        else:
            deaths = self._early_deaths[proc.frame] = self._early_deaths.get(proc.frame, 0) + 1
            what = f"an invocation before its first task (death {deaths} of {_EARLY_DEATHS})"
            if deaths >= _EARLY_DEATHS:
                requeue = False
                self._early_deaths.pop(proc.frame, None)
                self._fail_unstartable(proc.frame, deaths, how)
        then = "it goes back to the queue" if requeue else "leases will tell"
        log.warning("shoal: worker process %s died (%s) running %s; %s", pid, how, what, then)
        if requeue:
            self._one_command("LPUSH", self.queue, proc.frame)  # first in line

    def _fail_unstartable(self, frame: bytes, deaths: int, how: str) -> None:
        """Fails the run of a frame whose processes die before starting any of its tasks: its
        hand-off lease would bring it back forever, and no task's crash record counts it."""
        from ..runtime.invocation import Invocation  # the format only, to name the run

        run_id = Invocation.peek_run_id(decode_frame(frame)[2])
        if run_id is None:
            return
        record = ErrorRecord(
            task=-1,
            name="<worker>",
            attempt=deaths,
            exc_type="WorkerCrashed",
            message=(
                f"worker processes died {deaths} times before starting any task of an "
                f"invocation ({how}): the process cannot start (too little memory_mb?)"
            ),
            traceback="",
            worker=f"{os.uname().nodename}:pool-{self.pool_id}",
            time=time.time(),
        )
        args: list[Any] = [record.task, record.to_blob()]
        for k, v in record.as_event().items():
            args += [k, v]
        self._script(scripts.FAIL, keys.fail_keys(run_id), args)

    def _script(self, script: str, script_keys: list[str], args: list[Any]) -> Any:
        """Runs a store script on a short-lived connection; None if the server did not answer."""
        return self._best_effort(lambda r: r.register_script(script)(keys=script_keys, args=args))

    def _one_command(self, *command: Any) -> None:
        """A best-effort command on a short-lived connection (off the manager's own one)."""
        self._best_effort(lambda r: r.execute_command(*command))

    def _best_effort(self, call: Any) -> Any:
        """``call(client)`` on a connection of its own, closed after; None if it failed."""
        import redis

        try:
            r: Any = redis.Redis.from_url(self.url, socket_timeout=5, client_name="shoal-pool")
            try:
                return call(r)
            finally:
                r.close()
        except Exception:
            return None

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

    def abandon(self, run_id: str, grace_s: float) -> None:
        """The run gave up: kill its processes that are still in one of its tasks after
        ``grace_s`` (checked at the manager's ticks)."""
        with self._cond:
            self._abandoned[run_id] = time.monotonic() + grace_s
            self._cond.notify_all()

    def settle_output(self) -> None:
        """Returns once what every process had printed so far is forwarded."""
        with self._cond:
            outputs = [p.output for p in self._procs if p.output is not None]
        for out in outputs:
            out.settle()

    def _kill_abandoned(self) -> None:
        now = time.monotonic()
        with self._cond:
            due = {r for r, at in self._abandoned.items() if at <= now}
            if not due:
                return
            for p in self._procs:
                running = p.running() if p.alive and p.busy else None
                if running is not None and running[0] in due:
                    p.stopped = True
                    log.warning(
                        "shoal: worker process %s stopped: its run %s gave up while it still "
                        "ran task %s",
                        p.popen.pid,
                        running[0],
                        running[1],
                    )
                    with contextlib.suppress(OSError):
                        p.popen.kill()
            for r in due:
                del self._abandoned[r]

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
        if self.cpu_groups is not None:
            self.cpu_groups.close()
        self._one_command("DEL", self.queue)


def _how_it_died(returncode: int, memory_mb: int | None) -> str:
    """``exit code 1`` or ``killed by SIGSEGV``, and the memory limit it ran under."""
    import signal

    if returncode < 0:
        try:
            how = f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            how = f"killed by signal {-returncode}"
    else:
        how = f"exit code {returncode}"
    return how + (f" under memory_mb={memory_mb}" if memory_mb else "")


class _Output:
    """Forwards a process's stdout and stderr, a line at a time, to this process's
    ``sys.stdout`` / ``sys.stderr`` as they are then (a progress bar on screen redirects them
    and prints each line above itself). Lines were prefixed with their task in the process
    (:mod:`shoal.runtime.output`). :meth:`settle` waits until what the process had written is
    forwarded: a run's output shows before its result."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        assert popen.stdout is not None and popen.stderr is not None
        self._sel = selectors.DefaultSelector()
        self._sel.register(popen.stdout, selectors.EVENT_READ, "stdout")
        self._sel.register(popen.stderr, selectors.EVENT_READ, "stderr")
        self._wake_r, self._wake_w = os.pipe()
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._partial = {"stdout": b"", "stderr": b""}
        self._cond = threading.Condition()
        self._caught_up = 0  # times it found nothing left to read
        self._closed = False
        threading.Thread(target=self._serve, name="shoal-pool-output", daemon=True).start()

    def settle(self, timeout: float = 2.0) -> None:
        with self._cond:
            if self._closed:
                return
            seen = self._caught_up
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")
            self._cond.wait_for(lambda: self._closed or self._caught_up > seen, timeout)

    def _serve(self) -> None:
        try:
            while len(self._sel.get_map()) > 1:  # the wake pipe and a stream still open
                ready = self._sel.select()
                woken = any(key.data is None for key, _ in ready)
                for key, _ in ready:
                    if key.data is None:
                        os.read(self._wake_r, 512)
                    else:
                        self._read(key)
                if woken:  # asked to settle: read what is there now, until nothing is
                    while more := [k for k, _ in self._sel.select(0) if k.data is not None]:
                        for key in more:
                            self._read(key)
                    with self._cond:
                        self._caught_up += 1
                        self._cond.notify_all()
        finally:
            self._sel.close()
            os.close(self._wake_r)
            with self._cond:
                self._closed = True
                os.close(self._wake_w)
                self._cond.notify_all()

    def _read(self, key: selectors.SelectorKey) -> None:
        stream = key.data
        data = os.read(key.fd, 65536)
        if not data:  # the process has exited
            self._sel.unregister(key.fileobj)
            key.fileobj.close()  # type: ignore[union-attr]
            rest, self._partial[stream] = self._partial[stream], b""
            if rest:
                _write(stream, rest + b"\n")
            return
        lines, _, self._partial[stream] = (self._partial[stream] + data).rpartition(b"\n")
        if lines:
            _write(stream, lines + b"\n")


def _write(stream: str, data: bytes) -> None:
    out = getattr(sys, stream)
    with contextlib.suppress(Exception):  # a closed console must not stop the pool
        out.write(data.decode("utf-8", "replace"))
        out.flush()


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    """Says ``message`` once per process (every pool of a test run would repeat it)."""
    if message not in _warned:
        _warned.add(message)
        log.warning(message)
