"""In-memory storage: the same semantics as Redis, for ``scheduler="sync"`` and tests.

Every change of a run's state goes through :mod:`.state` (the Lua scripts implement the same
contract on the server). Around it, this store models Redis's key space (strings, hashes,
streams, TTLs) with the key names of :mod:`.keys`, so the contract suite can ask both
implementations the same questions: a run's :class:`~.state.RunState` lives under its ``meta``
key, and :meth:`MemoryStorage.run_keys` lists the keys its non-empty parts would occupy on the
server. Inboxes live and die with the state, except that a cleanup which does not name an inbox
leaves it behind, as on the server.

Every method runs without awaiting in between, which makes each one atomic on the event loop,
like a Lua script on the server. Blocking reads wait on one condition variable notified by every
write to a list or stream; their timeouts are real time, while leases and TTLs follow the
injected clock (so a test advances it instead of sleeping).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from . import keys
from .base import (
    Completion,
    CompletionResult,
    ErrorRecord,
    Event,
    Expansion,
    Fetched,
    RunSpec,
    TaskStart,
    start_alone,
)
from .state import RunState, Step, refused

#: Task ids taken per pop, as RedisStorage's ``BLMPOP ... COUNT``.
_INBOX_BATCH = 4096


@dataclass(eq=False)
class _Run:
    """What the ``meta`` key holds here: the run's state and how long its events outlive it."""

    state: RunState
    events_ttl_s: int


class MemoryStorage:
    def __init__(self, lease_ttl_s: float = 5.0, clock: Callable[[], float] = time.time) -> None:
        self.lease_ttl_s = lease_ttl_s
        self.clock = clock
        self._data: dict[str, Any] = {}
        self._expires: dict[str, float] = {}
        self._stream_seq = 0
        self._last_ms = 0
        self._cond: asyncio.Condition | None = None
        self._runs: dict[str, float] = {}

    # -- key space -------------------------------------------------------------------------

    def _get(self, key: str, default: Any = None) -> Any:
        exp = self._expires.get(key)
        if exp is not None and exp <= self.clock():
            self._data.pop(key, None)
            self._expires.pop(key, None)
        return self._data.get(key, default)

    def _hash(self, key: str) -> dict[str, bytes]:
        h = self._get(key)
        if h is None:
            h = self._data[key] = {}
        return h  # type: ignore[no-any-return]

    def _expire(self, key: str, seconds: float) -> None:
        if key in self._data:
            self._expires[key] = self.clock() + seconds

    def _state(self, run_id: str) -> RunState | None:
        """The run's state, None once it is gone (cleaned up or expired)."""
        run: _Run | None = self._get(keys.meta(run_id))
        return None if run is None else run.state

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    async def _notify(self) -> None:
        cond = self._condition()
        async with cond:
            cond.notify_all()

    async def _wait(self, deadline: float) -> bool:
        """Waits for a write until ``deadline`` (loop time); False once it has passed."""
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            return False
        cond = self._condition()
        async with cond:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(cond.wait(), remaining)
        return True

    def _xadd(self, key: str, event: Event) -> str:
        stream = self._get(key)
        if stream is None:
            stream = self._data[key] = []
        # Ids grow strictly, like Redis's: never behind the last one even if the clock steps back.
        ms = max(int(time.time() * 1000), self._last_ms)
        self._stream_seq = self._stream_seq + 1 if ms == self._last_ms else 0
        self._last_ms = ms
        entry_id = f"{ms}-{self._stream_seq}"
        stream.append((entry_id, dict(event)))
        return entry_id

    async def _applied(self, run_id: str, step: Step) -> CompletionResult:
        await self._appended(run_id, step.events)
        return step.result

    async def _appended(self, run_id: str, events: list[Event]) -> None:
        for event in events:
            self._xadd(keys.events(run_id), event)
        if events:
            await self._notify()

    # -- protocol ----------------------------------------------------------------------------

    async def submit(self, spec: RunSpec, event: Event) -> None:
        rid = spec.run_id
        for h, blob in spec.functions.items():
            self._data.setdefault(keys.function(h), blob)
        # Both hashes exist from submission, as on the server (a placeholder keeps them there).
        self._hash(keys.constants(rid)).update({h.hex(): b for h, b in spec.constants.items()})
        self._hash(keys.subdags(rid)).update(spec.subdags)
        state = RunState(len(spec.outputs), self.clock, started=set(spec.started_workers))
        state.hand_off(spec.handed, self.lease_ttl_s)
        self._data[keys.meta(rid)] = _Run(state, spec.events_ttl_s)
        self._xadd(keys.events(rid), event)
        for key in (keys.constants(rid), keys.subdags(rid), keys.meta(rid), keys.events(rid)):
            self._expire(key, spec.ttl_s)
        self._runs[rid] = time.time()
        await self._notify()

    async def fetch(
        self,
        run_id: str,
        outputs: Sequence[int],
        functions: Sequence[bytes] = (),
        constants: Sequence[bytes] = (),
        event: Event | None = None,
        lease: Sequence[str] = (),
        lists: Mapping[int, int] | None = None,
        starting: int | None = None,
        rerun: bool = False,
    ) -> Fetched:
        state = self._state(run_id)
        if starting is not None and (state is None or state.ended is not None):
            return Fetched(outputs={}, functions={}, constants={}, ended=True)
        if starting is not None and not rerun and state is not None and state.is_done(starting):
            return Fetched(outputs={}, functions={}, constants={}, done=True)
        if event is not None:
            await self.append_event(run_id, event)
        if state is not None:  # a gone run stays gone
            state.take(lease, self.lease_ttl_s)
        stored = {} if state is None else state.outputs
        consts = self._get(keys.constants(run_id)) or {}
        return Fetched(
            outputs={t: stored[t] for t in outputs if t in stored},
            functions={h: b for h in functions if (b := self._get(keys.function(h))) is not None},
            constants={h: consts[h.hex()] for h in constants if h.hex() in consts},
            lists={} if state is None else state.lists(lists or {}),
            crashes=tuple(state.crashes.get(starting, ()))
            if state is not None and starting is not None
            else (),
        )

    async def put_subdag(self, run_id: str, name: str, blob: bytes) -> None:
        if self._state(run_id) is None:  # cleaned up or expired: a straggler re-creates nothing
            return
        self._hash(keys.subdags(run_id))[name] = blob

    async def get_subdag(self, run_id: str, name: str) -> bytes | None:
        return (self._get(keys.subdags(run_id)) or {}).get(name)

    async def complete(
        self, run_id: str, completion: Completion, then: TaskStart | None = None
    ) -> CompletionResult:
        state = self._state(run_id)
        if state is None:  # cleaned up: a straggler changes nothing
            return refused()
        result = await self._applied(run_id, state.complete(completion, self.lease_ttl_s))
        if then is None or not result.first or (then.if_ready and then.task not in result.ready):
            return result
        return replace(result, started=await start_alone(self, run_id, then))

    async def expand(self, run_id: str, expansion: Expansion) -> CompletionResult:
        state = self._state(run_id)
        if state is None:
            return refused()
        return await self._applied(run_id, state.expand(expansion, self.lease_ttl_s))

    async def fail(self, run_id: str, record: ErrorRecord) -> bool:
        state = self._state(run_id)
        events = [] if state is None else state.fail(record)
        for event in events:
            self._xadd(keys.events(run_id), event)
        await self._notify()
        return bool(events)

    async def cancel(self, run_id: str, reason: str) -> bool:
        state = self._state(run_id)
        events = [] if state is None else state.cancel(reason)
        await self._appended(run_id, events)
        return bool(events)

    async def append_event(self, run_id: str, event: Event) -> str:
        if self._get(keys.events(run_id)) is None:  # like XADD NOMKSTREAM
            return ""
        entry_id = self._xadd(keys.events(run_id), event)
        await self._notify()
        return entry_id

    async def append_events(self, run_id: str, batch: Sequence[Event]) -> None:
        if batch and self._get(keys.events(run_id)) is not None:
            for event in batch:
                self._xadd(keys.events(run_id), event)
            await self._notify()

    async def read_events(
        self, run_id: str, after: str = "0", block_s: float | None = None, count: int = 1000
    ) -> list[tuple[str, Event]]:
        deadline = None if block_s is None else asyncio.get_running_loop().time() + block_s
        while True:
            stream = self._get(keys.events(run_id)) or []
            found = [(i, dict(e)) for i, e in stream if _after(i, after)][:count]
            if found or deadline is None or not await self._wait(deadline):
                return found

    async def pop_inbox(self, run_id: str, worker: int, block_s: float) -> list[int]:
        deadline = asyncio.get_running_loop().time() + block_s
        while True:
            state = self._state(run_id)
            if state is not None:
                tasks = state.pop_inbox(worker, _INBOX_BATCH)
            else:  # left behind by a cleanup that did not name it
                left: deque[int] = self._get(keys.inbox(run_id, worker)) or deque()
                tasks = [left.popleft() for _ in range(min(_INBOX_BATCH, len(left)))]
                if not left:
                    self._data.pop(keys.inbox(run_id, worker), None)
            if tasks or not await self._wait(deadline):
                return tasks

    async def renew(self, run_id: str, members: Sequence[str]) -> None:
        self.renew_blocking(run_id, members)

    def renew_blocking(self, run_id: str, members: Sequence[str]) -> None:
        state = self._state(run_id)
        if state is not None:
            state.renew(members, self.lease_ttl_s)

    async def release(
        self, run_id: str, members: Sequence[str], event: Event | None = None
    ) -> None:
        state = self._state(run_id)
        if state is not None:
            state.release(members)
        if event is not None:
            await self.append_event(run_id, event)

    async def hand_off(self, run_id: str, members: Sequence[str]) -> None:
        state = self._state(run_id)
        if state is not None:
            state.hand_off(members, self.lease_ttl_s)

    async def crashed(
        self, run_id: str, task: int, how: str, worker: str = "", requeue: bool = False
    ) -> int:
        state = self._state(run_id)
        if state is None:
            return -1
        count, appended = state.crashed(task, how, worker, requeue, self.lease_ttl_s)
        await self._appended(run_id, appended)
        return count

    async def expired(self, run_id: str) -> list[str] | None:
        state = self._state(run_id)
        if state is None:
            return None
        gone, appended = state.expired(self.lease_ttl_s)
        await self._appended(run_id, appended)
        return gone

    async def events_range(self, run_id: str, count: int | None = None) -> list[tuple[str, Event]]:
        stream = self._get(keys.events(run_id)) or []
        return [(i, dict(e)) for i, e in stream[:count]]

    async def recent_runs(self, limit: int = 20) -> list[tuple[str, float]]:
        live = [(r, t) for r, t in self._runs.items() if self._get(keys.events(r)) is not None]
        return sorted(live, key=lambda rt: -rt[1])[:limit]

    async def server_time(self) -> float:
        return time.time()

    async def run_ended(self, run_id: str) -> bool:
        state = self._state(run_id)
        return state is None or state.ended is not None

    async def task_states(self, run_id: str, tasks: Sequence[int]) -> dict[int, bool | None]:
        state = self._state(run_id)
        return {t: None for t in tasks} if state is None else state.task_states(tasks)

    async def results(
        self, run_id: str, tasks: Sequence[int], lists: Mapping[int, int] | None = None
    ) -> Fetched:
        return await self.fetch(run_id, tasks, lists=lists)

    async def errors(self, run_id: str) -> dict[int, bytes]:
        state = self._state(run_id)
        return {} if state is None else {t: r.to_blob() for t, r in state.errors.items()}

    async def keep_value(self, value_id: str, blob: bytes, ttl_s: float) -> None:
        self._data[keys.persisted(value_id)] = blob
        self._expire(keys.persisted(value_id), ttl_s)

    async def kept_value(self, value_id: str) -> bytes | None:
        blob: bytes | None = self._get(keys.persisted(value_id))
        return blob

    async def release_value(self, value_id: str) -> bool:
        found = self._get(keys.persisted(value_id)) is not None
        self._data.pop(keys.persisted(value_id), None)
        return found

    async def cleanup(self, run_id: str, extra_keys: Sequence[str]) -> None:
        run: _Run | None = self._get(keys.meta(run_id))
        deleted = {*keys.fixed_run_keys(run_id), *extra_keys}
        if run is not None:
            for w, inbox in run.state.inboxes.items():
                key = keys.inbox(run_id, w)
                if key not in deleted:  # on the server, an inbox is a key of its own
                    self._data[key] = inbox
                    self._expire(key, keys.RUN_TTL_S)
        for key in deleted:
            self._data.pop(key, None)
            self._expires.pop(key, None)
        events_ttl = keys.EVENTS_TTL_S if run is None else run.events_ttl_s
        self._expire(keys.events(run_id), events_ttl)

    async def run_keys(self, run_id: str) -> list[str]:
        tag = f"{{{run_id}}}"
        found = {k for k in list(self._data) if tag in k and self._get(k) is not None}
        state = self._state(run_id)
        if state is not None:
            found.update(_state_keys(run_id, state))
        return sorted(found)

    async def close(self) -> None:
        return None


def _state_keys(run_id: str, state: RunState) -> list[str]:
    """The keys a run's state occupies on the server: the hashes, sets and sorted set created
    at submission, the errors hash once a failure is recorded, and every non-empty inbox."""
    found = [
        keys.outputs(run_id),
        keys.pending(run_id),
        keys.started(run_id),
        keys.leases(run_id),
        keys.widths(run_id),
        keys.crashes(run_id),
    ]
    if state.errors:
        found.append(keys.errors(run_id))
    return found + [keys.inbox(run_id, w) for w in state.inboxes]


def _after(entry_id: str, after: str) -> bool:
    def parts(i: str) -> tuple[int, int]:
        ms, _, seq = i.partition("-")
        return int(ms), int(seq or 0)

    return parts(entry_id) > parts(after)
