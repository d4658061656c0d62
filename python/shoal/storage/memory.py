"""In-memory storage: the same semantics as Redis, for ``scheduler="sync"`` and tests.

It models Redis's key space (strings, hashes, sets, lists, streams, TTLs) with the same key names
from :mod:`.keys`, so the contract suite can ask both implementations the same questions. Every
method runs without awaiting in between, which makes each one atomic on the event loop, like a
Lua script on the server. Blocking reads wait on one condition variable notified by every write
to a list or stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from . import keys
from .base import (
    Completion,
    CompletionResult,
    Downstream,
    ErrorRecord,
    Event,
    Expansion,
    Fetched,
    Gather,
    RunSpec,
)


class MemoryStorage:
    def __init__(self, lease_ttl_s: float = 5.0) -> None:
        self.lease_ttl_s = lease_ttl_s
        self._data: dict[str, Any] = {}
        self._expires: dict[str, float] = {}
        self._stream_seq = 0
        self._last_ms = 0
        self._cond: asyncio.Condition | None = None
        self._runs: dict[str, float] = {}

    # -- key space -------------------------------------------------------------------------

    def _get(self, key: str, default: Any = None) -> Any:
        exp = self._expires.get(key)
        if exp is not None and exp <= time.monotonic():
            self._data.pop(key, None)
            self._expires.pop(key, None)
        return self._data.get(key, default)

    def _hash(self, key: str) -> dict[str, bytes]:
        h = self._get(key)
        if h is None:
            h = self._data[key] = {}
        return h  # type: ignore[no-any-return]

    def _set(self, key: str) -> set[str]:
        s = self._get(key)
        if s is None:
            s = self._data[key] = set()
        return s  # type: ignore[no-any-return]

    def _expire(self, key: str, seconds: float) -> None:
        if key in self._data:
            self._expires[key] = time.monotonic() + seconds

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    async def _notify(self) -> None:
        cond = self._condition()
        async with cond:
            cond.notify_all()

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

    # -- protocol ----------------------------------------------------------------------------

    async def submit(self, spec: RunSpec, event: Event) -> None:
        rid = spec.run_id
        for h, blob in spec.functions.items():
            self._data.setdefault(keys.function(h), blob)
        if spec.constants:
            self._hash(keys.constants(rid)).update({h.hex(): b for h, b in spec.constants.items()})
            self._expire(keys.constants(rid), spec.ttl_s)
        if spec.subdags:
            self._hash(keys.subdags(rid)).update(spec.subdags)
            self._expire(keys.subdags(rid), spec.ttl_s)
        meta = self._hash(keys.meta(rid))
        meta["outputs_left"] = str(len(spec.outputs)).encode()
        meta["events_ttl"] = str(spec.events_ttl_s).encode()
        self._expire(keys.meta(rid), spec.ttl_s)
        if spec.started_workers:
            self._set(keys.started(rid)).update(str(w) for w in spec.started_workers)
            self._expire(keys.started(rid), spec.ttl_s)
        self._data[keys.leases(rid)] = {"_": float("inf")}
        self._expire(keys.leases(rid), spec.ttl_s)
        self._xadd(keys.events(rid), event)
        self._expire(keys.events(rid), spec.ttl_s)
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
    ) -> Fetched:
        if event is not None:
            await self.append_event(run_id, event)
        self._lease(run_id, lease)
        outs = self._get(keys.outputs(run_id)) or {}
        consts = self._get(keys.constants(run_id)) or {}
        widths = self._get(keys.widths(run_id)) or {}
        got_lists = {}
        for m, base in (lists or {}).items():
            width = widths.get(str(m))
            if width is not None:
                found = [outs.get(str(base + i)) for i in range(int(width))]
                blobs = [b for b in found if b]
                if len(blobs) == len(found):  # every element's output is there
                    got_lists[m] = blobs
        return Fetched(
            outputs={t: outs[str(t)] for t in outputs if str(t) in outs},
            functions={h: b for h in functions if (b := self._get(keys.function(h))) is not None},
            constants={h: consts[h.hex()] for h in constants if h.hex() in consts},
            lists=got_lists,
        )

    async def put_subdag(self, run_id: str, name: str, blob: bytes) -> None:
        self._hash(keys.subdags(run_id))[name] = blob

    async def get_subdag(self, run_id: str, name: str) -> bytes | None:
        return (self._get(keys.subdags(run_id)) or {}).get(name)

    async def complete(self, run_id: str, completion: Completion) -> CompletionResult:
        c = completion
        if self._get(keys.meta(run_id)) is None:  # cleaned up: a straggler changes nothing
            return CompletionResult(first=False, ready=[], invoke_workers=[], run_finished=False)
        done = self._set(keys.done(run_id))
        self._leases(run_id).pop(keys.task_lease(c.task), None)
        if str(c.task) in done:
            return CompletionResult(first=False, ready=[], invoke_workers=[], run_finished=False)
        done.add(str(c.task))
        state = _RunState(self, run_id, c.worker)
        someone_waits = state.count_down(c.downstream)
        if c.output is not None and (c.must_store or someone_waits):
            self._hash(keys.outputs(run_id)).setdefault(str(c.task), c.output)
        self._xadd(keys.events(run_id), {"type": "TASK_COMPLETED", "task": str(c.task), **c.event})
        if c.is_output:
            state.output_done()
        pending = self._hash(keys.pending(run_id))
        for g in c.gathers:
            left = int(pending.get(f"g{g.map}", b"0")) - 1
            pending[f"g{g.map}"] = str(left).encode()
            if left == 0:
                state.finish_map(g)
        return await state.result()

    async def expand(self, run_id: str, expansion: Expansion) -> CompletionResult:
        x = expansion
        if self._get(keys.meta(run_id)) is None:
            return CompletionResult(first=False, ready=[], invoke_workers=[], run_finished=False)
        self._leases(run_id).pop(keys.task_lease(x.root), None)
        widths = self._hash(keys.widths(run_id))
        if str(x.root) in widths:
            return CompletionResult(first=False, ready=[], invoke_workers=[], run_finished=False)
        pending = self._hash(keys.pending(run_id))
        for g in x.maps:
            widths[str(g.map)] = str(x.width).encode()
            if x.width:
                pending[f"g{g.map}"] = str(x.width).encode()
        outs = self._hash(keys.outputs(run_id))
        items = {str(x.item_base + i): blob for i, blob in enumerate(x.items)}
        outs.update(items)
        self._set(keys.done(run_id)).update(items)  # stored like outputs (task_states: True)
        state = _RunState(self, run_id, x.worker)
        state.ready.extend(x.element_base + i for i in range(x.width))
        event = {k: v for k, v in x.event.items() if k not in ("type", "task", "width")}
        self._xadd(
            keys.events(run_id),
            {"type": "MAP_EXPANDED", "task": str(x.root), "width": str(x.width), **event},
        )
        if x.width == 0:
            for g in x.maps:
                state.finish_map(g)
        return await state.result()

    async def fail(self, run_id: str, record: ErrorRecord) -> bool:
        meta = self._get(keys.meta(run_id))
        if meta is None or meta.get("ended"):
            return False
        meta["ended"] = b"failed"
        event = record.as_event()
        self._hash(keys.errors(run_id))[str(record.task)] = record.to_blob()
        self._xadd(keys.events(run_id), event)
        self._xadd(keys.events(run_id), {"type": "RUN_FAILED", "task": str(record.task)})
        await self._notify()
        return True

    async def append_event(self, run_id: str, event: Event) -> str:
        if self._get(keys.events(run_id)) is None:  # like XADD NOMKSTREAM
            return ""
        entry_id = self._xadd(keys.events(run_id), event)
        await self._notify()
        return entry_id

    async def read_events(
        self, run_id: str, after: str = "0", block_s: float | None = None, count: int = 1000
    ) -> list[tuple[str, Event]]:
        deadline = None if block_s is None else time.monotonic() + block_s
        cond = self._condition()
        while True:
            stream = self._get(keys.events(run_id)) or []
            found = [(i, dict(e)) for i, e in stream if _after(i, after)][:count]
            if found or deadline is None:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            async with cond:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(cond.wait(), remaining)

    async def pop_inbox(self, run_id: str, worker: int, block_s: float) -> list[int]:
        deadline = time.monotonic() + block_s
        cond = self._condition()
        while True:
            inbox = self._get(keys.inbox(run_id, worker))
            if inbox:
                items = list(inbox)
                inbox.clear()
                return items
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            async with cond:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(cond.wait(), remaining)

    def _leases(self, run_id: str) -> dict[str, float]:
        return self._get(keys.leases(run_id)) or {}

    def _lease(self, run_id: str, members: Sequence[str], only_held: bool = False) -> None:
        held = self._get(keys.leases(run_id))
        if held is None:  # a gone run stays gone
            return
        expiry = time.monotonic() + self.lease_ttl_s
        for m in members:
            if not only_held or m in held:
                held[m] = expiry

    async def renew(self, run_id: str, members: Sequence[str]) -> None:
        self._lease(run_id, members, only_held=True)

    async def release(self, run_id: str, members: Sequence[str]) -> None:
        held = self._leases(run_id)
        for m in members:
            held.pop(m, None)

    async def expired(self, run_id: str) -> list[str] | None:
        if self._get(keys.meta(run_id)) is None:
            return None
        now = time.monotonic()
        held = self._leases(run_id)
        gone = sorted(m for m, exp in held.items() if exp <= now)
        for m in gone:
            held[m] = now + self.lease_ttl_s
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
        meta = self._get(keys.meta(run_id))
        return meta is None or "ended" in meta

    async def task_states(self, run_id: str, tasks: Sequence[int]) -> dict[int, bool | None]:
        done = self._get(keys.done(run_id)) or set()
        outs = self._get(keys.outputs(run_id)) or {}
        return {t: (str(t) in outs) if str(t) in done else None for t in tasks}

    async def results(
        self, run_id: str, tasks: Sequence[int], lists: Mapping[int, int] | None = None
    ) -> Fetched:
        return await self.fetch(run_id, tasks, lists=lists)

    async def errors(self, run_id: str) -> dict[int, bytes]:
        return {int(k): v for k, v in (self._get(keys.errors(run_id)) or {}).items()}

    async def cleanup(self, run_id: str, extra_keys: Sequence[str]) -> None:
        meta = self._get(keys.meta(run_id)) or {}
        events_ttl = int(meta.get("events_ttl", b"86400"))
        for key in [*keys.fixed_run_keys(run_id), *extra_keys]:
            self._data.pop(key, None)
            self._expires.pop(key, None)
        self._expire(keys.events(run_id), events_ttl)

    async def run_keys(self, run_id: str) -> list[str]:
        tag = f"{{{run_id}}}"
        return sorted(k for k in list(self._data) if tag in k and self._get(k) is not None)

    async def close(self) -> None:
        return None


def _after(entry_id: str, after: str) -> bool:
    def parts(i: str) -> tuple[int, int]:
        ms, _, seq = i.partition("-")
        return int(ms), int(seq or 0)

    return parts(entry_id) > parts(after)


class _RunState:
    """What one completion or expansion changes, as the scripts' shared helpers do."""

    def __init__(self, store: MemoryStorage, run_id: str, worker: int | None) -> None:
        self.store, self.run_id, self.worker = store, run_id, worker
        self.ready: list[int] = []
        self.invoke: list[int] = []
        self.finished = False

    def count_down(self, downstream: Sequence[Downstream]) -> bool:
        """Counts down downstream tasks and routes the ready ones; True if one still waits."""
        s, rid = self.store, self.run_id
        pending = s._hash(keys.pending(rid))
        started = s._set(keys.started(rid))
        waits = False
        for d in downstream:
            count = int(pending.get(str(d.task), b"0")) + 1
            pending[str(d.task)] = str(count).encode()
            if count < d.ndeps:
                waits = True
            elif d.worker is not None and d.worker != self.worker:
                inbox = s._get(keys.inbox(rid, d.worker))
                if inbox is None:
                    inbox = s._data[keys.inbox(rid, d.worker)] = deque()
                inbox.append(d.task)
                if str(d.worker) not in started:
                    started.add(str(d.worker))
                    self.invoke.append(d.worker)
            else:
                self.ready.append(d.task)
        return waits

    def output_done(self) -> None:
        meta = self.store._hash(keys.meta(self.run_id))
        left = int(meta.get("outputs_left", b"0")) - 1
        meta["outputs_left"] = str(left).encode()
        if left == 0:
            meta["ended"] = b"completed"
            self.store._xadd(keys.events(self.run_id), {"type": "RUN_COMPLETED"})
            self.finished = True

    def finish_map(self, g: Gather) -> None:
        """A map's last element is done (or its width is 0): the map completes."""
        s, rid = self.store, self.run_id
        done = s._set(keys.done(rid))
        if str(g.map) in done:
            return
        done.add(str(g.map))
        self.count_down(g.downstream)
        width = s._hash(keys.widths(rid)).get(str(g.map), b"0").decode()
        event = {k: v for k, v in g.event.items() if k not in ("type", "task", "width")}
        s._xadd(
            keys.events(rid),
            {"type": "TASK_COMPLETED", "task": str(g.map), "width": width, **event},
        )
        if g.is_output:
            self.output_done()

    async def result(self) -> CompletionResult:
        self.store._lease(self.run_id, [keys.task_lease(t) for t in self.ready])
        await self.store._notify()
        return CompletionResult(True, self.ready, self.invoke, self.finished)
