"""Short tasks run on the worker's loop, without a thread hop.

A task function normally runs in a thread (``asyncio.to_thread``), so the worker's loop keeps
renewing leases and serving the store while it runs. For a function of a microsecond the hop
costs far more than the call (80 to 215 µs measured). So a function that has run under
:data:`FAST_TASK_S` :data:`INLINE_AFTER` times in a row in this process runs inline, on the
loop, from then on; one that then takes :data:`FAST_TASK_S` or more inline goes back to a
thread for good (in this process), unless it computed less than that and never waited (it was
preempted: on a busy machine a 70 µs function now and then takes milliseconds of wall time,
and judged by the wall clock alone it lost its place on the loop for good: :class:`Pause`).
Calls with a ``timeout_s`` always go to a thread (only there can they be abandoned).

An inline call blocks the loop, and with it the lease renewal. :class:`LeaseGuard` bounds that:
a thread of the process, watching the inline call in progress, renews the worker's leases from
outside the loop (``Storage.renew_blocking``) once the call has blocked it for one renewal
period, and every period after. A slow call inline thus costs its own time, never a lease.

State: :class:`InlinePolicy` has ``fast_runs`` (function id -> consecutive fast runs) and
``slow`` (ids that ran slow inline); :class:`LeaseGuard` has ``_watching`` (the renewal to make
and the period, with the start time of the inline call, or None between calls).
"""

from __future__ import annotations

import contextlib
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

#: A run under this is fast.
FAST_TASK_S = 0.001
#: Fast runs in a row after which a function runs inline.
INLINE_AFTER = 3
#: How often the guard looks at the inline call in progress.
GUARD_TICK_S = 0.1
#: Per-thread resource usage (Linux); elsewhere a thread's context switches are not known.
_RUSAGE_THREAD: int | None = getattr(resource, "RUSAGE_THREAD", None)


@dataclass
class InlinePolicy:
    """Which functions of this process run inline (see the module docstring)."""

    fast_runs: dict[int, int] = field(default_factory=dict)
    slow: set[int] = field(default_factory=set)

    def inline(self, fn: int) -> bool:
        return fn not in self.slow and self.fast_runs.get(fn, 0) >= INLINE_AFTER

    def ran(self, fn: int, seconds: float, inline: bool, pause: Pause | None = None) -> None:
        """``fn`` took ``seconds``; ``pause`` says, for an inline call over the limit, how
        much of that it computed and whether it waited (see :class:`Pause`)."""
        fast = seconds < FAST_TASK_S or (inline and pause is not None and pause.preempted_only)
        if fast:
            self.fast_runs[fn] = self.fast_runs.get(fn, 0) + 1
        else:
            self.fast_runs[fn] = 0
            if inline:
                self.slow.add(fn)

    def refuse(self, fn: int) -> None:
        """Never inline ``fn`` again here (it needs a thread: it runs an event loop itself)."""
        self.slow.add(fn)


@dataclass(slots=True)
class Pause:
    """Why an inline call took long: the CPU it used, and whether it waited on anything. A
    call that computed little and never waited was preempted (other processes had the
    cores): it is still short, and must not lose its place on the loop for it."""

    cpu_s: float
    waited: bool

    @property
    def preempted_only(self) -> bool:
        return self.cpu_s < FAST_TASK_S and not self.waited


class PauseMeter:
    """Measures a call's :class:`Pause` on the calling thread (CPU time and voluntary context
    switches: a sleep, a lock, I/O all make one; a preemption does not). Where a thread's
    switches cannot be read, every long call counts as one that waited."""

    __slots__ = ("_cpu", "_switches")

    def __init__(self) -> None:
        self._cpu = time.thread_time()
        self._switches = _voluntary_switches()

    def stop(self) -> Pause:
        now = _voluntary_switches()
        waited = now is None or self._switches is None or now > self._switches
        return Pause(time.thread_time() - self._cpu, waited)


def _voluntary_switches() -> int | None:
    if _RUSAGE_THREAD is None:
        return None
    return resource.getrusage(_RUSAGE_THREAD).ru_nvcsw


class LeaseGuard:
    """Renews a worker's leases while an inline call blocks its loop."""

    def __init__(self) -> None:
        self._watching: tuple[Callable[[], None], float, float] | None = None
        self.renewals = 0  # made from outside the loop (for tests)
        threading.Thread(target=self._serve, name="shoal-lease-guard", daemon=True).start()

    def watch(self, renew: Callable[[], None], every_s: float) -> None:
        """An inline call starts: ``renew`` if it blocks the loop ``every_s`` or longer."""
        self._watching = (renew, every_s, time.monotonic())

    def clear(self) -> None:
        self._watching = None

    def _serve(self) -> None:
        while True:
            time.sleep(GUARD_TICK_S)
            watching = self._watching
            if watching is None:
                continue
            renew, every, since = watching
            if time.monotonic() - since < every:
                continue
            with contextlib.suppress(Exception):  # a missed renewal costs a duplicate at most
                renew()
                self.renewals += 1
            if self._watching is watching:  # the same call still blocks: again a period on
                self._watching = (renew, every, time.monotonic())
