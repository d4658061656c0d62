"""Redis (or Valkey) storage: the production implementation of the storage protocol.

Every operation is one round trip: plain reads and writes go in one pipeline, state changes that
must be atomic run as Lua scripts (:mod:`.scripts`, sent by EVALSHA). Blocking reads (the event
stream, inboxes) use the server's blocking commands on a connection without a socket timeout,
so nothing polls and no wake-up depends on pub/sub.

Keys a run creates later than its submission (inboxes) get their TTL when written; the hashes a
run writes to are created at submission with a placeholder field and the TTL, and since Redis
keeps a key's TTL across HSET/HINCRBY they never live without one.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import msgpack
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError as RedisOutOfMemoryError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..config import redact_url
from ..errors import StorageError
from . import keys, scripts
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
    TaskStart,
)
from .direct import DirectScript

#: Placeholder field that keeps a run's hashes alive (and under their TTL) while empty.
_PLACEHOLDER = "_"
#: Largest number of inbox entries taken in one blocking pop.
_INBOX_BATCH = 4096


class RedisStorage:
    def __init__(
        self,
        url: str,
        *,
        client: aioredis.Redis | None = None,
        lease_ttl_s: float = 5.0,
        name: str | None = None,
    ) -> None:
        """``name``: what the server's CLIENT LIST calls this store's connections
        (``shoal-client``, ``shoal-worker``), so who sends what can be told apart."""
        self.url = url
        self.name = name
        self.lease_ttl_s = lease_ttl_s
        # socket_timeout=None: blocking reads may wait as long as they ask to. Typed Any:
        # redis-py's reply types are unions of every RESP shape, too loose to check against.
        # Transient disconnects are retried with backoff (about 3 s in all), then raised.
        self._r: Any = client or aioredis.Redis.from_url(
            url,
            client_name=name,
            decode_responses=False,
            socket_timeout=None,
            health_check_interval=0,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 6),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
        )
        complete = self._r.register_script(scripts.COMPLETE)
        # The two scripts of every task, straight on a pooled connection (see .direct).
        self._complete_direct = DirectScript(self._r, complete)
        self._start_direct = DirectScript(self._r, self._r.register_script(scripts.START))
        self._expand = self._r.register_script(scripts.EXPAND)
        self._fail = self._r.register_script(scripts.FAIL)
        self._renew = self._r.register_script(scripts.RENEW)
        self._put_subdag = self._r.register_script(scripts.PUT_SUBDAG)
        self._expired = self._r.register_script(scripts.EXPIRED)
        self._handoff = self._r.register_script(scripts.HANDOFF)
        self._cancel = self._r.register_script(scripts.CANCEL)
        self._crashed = self._r.register_script(scripts.CRASHED)
        self._sync_renew: Any = None  # for renew_blocking

    @property
    def client(self) -> aioredis.Redis:
        client: aioredis.Redis = self._r
        return client

    async def ping(self) -> None:
        await self._r.ping()

    async def server_time(self) -> float:
        secs, micros = await self._r.time()
        return float(secs) + float(micros) / 1e6

    # -- protocol ----------------------------------------------------------------------------

    async def submit(self, spec: RunSpec, event: Event) -> None:
        rid, ttl = spec.run_id, spec.ttl_s
        p = self._r.pipeline(transaction=False)
        for h, blob in spec.functions.items():
            # Shared across runs, content-addressed: rewriting only refreshes the TTL.
            p.set(keys.function(h), blob, ex=max(ttl, keys.FUNCTION_TTL_S))
        hashes: dict[str, dict[Any, Any]] = {
            keys.constants(rid): {h.hex(): b for h, b in spec.constants.items()},
            keys.subdags(rid): dict(spec.subdags),
            keys.outputs(rid): {},
            keys.pending(rid): {},
            keys.widths(rid): {},
            keys.crashes(rid): {},
            keys.meta(rid): {
                "outputs_left": len(spec.outputs),
                "events_ttl": spec.events_ttl_s,
                "submitted": repr(time.time()),
            },
        }
        for key, mapping in hashes.items():
            p.hset(key, mapping={_PLACEHOLDER: b"", **mapping})
            p.expire(key, ttl)
        p.sadd(keys.started(rid), _PLACEHOLDER, *[str(w) for w in spec.started_workers])
        p.expire(keys.started(rid), ttl)
        p.zadd(keys.leases(rid), {_PLACEHOLDER: "+inf"})  # never expires; keeps the key alive
        p.expire(keys.leases(rid), ttl)
        if spec.handed:  # the first invocations: covered until they start
            await self._handoff(
                keys=[keys.leases(rid)], args=[self._lease_ms, *spec.handed], client=p
            )
        p.xadd(keys.events(rid), dict(event))
        # Outlives the other keys by its own TTL, also when no client cleans up after the run.
        p.expire(keys.events(rid), ttl + spec.events_ttl_s)
        now = time.time()
        p.zadd(keys.RUNS_INDEX, {rid: now})
        p.zremrangebyscore(keys.RUNS_INDEX, "-inf", now - spec.events_ttl_s)
        # Shared and trimmed as it goes, it still lives no longer than the last run's events.
        p.expire(keys.RUNS_INDEX, spec.events_ttl_s)
        await p.execute()

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
        run_keys = [
            keys.events(run_id),
            keys.outputs(run_id),
            keys.constants(run_id),
            keys.leases(run_id),
            keys.widths(run_id),
            keys.crashes(run_id),
            keys.meta(run_id),
        ]
        lists = dict(lists or {})
        args: list[Any] = [
            _pack_event(event or {}),
            _pack(list(outputs)),
            _pack([h.hex() for h in constants]),
            _pack(list(lease)),
            self._lease_ms,
            _pack(list(lists.items())),
            "" if starting is None else starting,
            int(rerun),
        ]
        fn_blobs, reply = await self._with_functions(self._start_direct, run_keys, args, functions)
        return _fetched(reply, outputs, functions, fn_blobs, constants, lists)

    async def _with_functions(
        self, call: DirectScript, run_keys: list[str], args: list[Any], functions: Sequence[bytes]
    ) -> tuple[list[bytes | None], Any]:
        """A hot script's reply, and the blobs of ``functions`` in the same round trip: they
        are cross-run keys, which a script may not read (another cluster slot). Rare: a
        warm worker has its functions."""
        if not functions:
            return [], await call(run_keys, args)
        p = self._r.pipeline(transaction=False)
        p.mget([keys.function(h) for h in functions])
        await call.script(keys=run_keys, args=args, client=p)
        fn_blobs, reply = await p.execute()
        return fn_blobs, reply

    async def put_subdag(self, run_id: str, name: str, blob: bytes) -> None:
        # Only into the hash made at submission (placeholder + TTL): never re-created after
        # cleanup by a straggler.
        await self._put_subdag(keys=[keys.subdags(run_id)], args=[name, blob])

    async def get_subdag(self, run_id: str, name: str) -> bytes | None:
        blob: bytes | None = await self._r.hget(keys.subdags(run_id), name)
        return blob

    async def complete(
        self, run_id: str, completion: Completion, then: TaskStart | None = None
    ) -> CompletionResult:
        c = completion
        route = _Routing(run_id, c.worker)
        event = {k: v for k, v in c.event.items() if k not in ("type", "task")}
        args: list[Any] = [
            c.task,
            c.output or b"",
            int(c.must_store),
            int(c.is_output),
            -1 if c.worker is None else c.worker,
            keys.RUN_TTL_S,
            _pack(route.down(c.downstream)),
            _pack_event(event),
            self._lease_ms,
            _pack(route.gathers(c.gathers)),
            "" if then is None else _pack_start(then),
        ]
        run_keys = _state_keys(run_id) + route.inbox_keys
        functions = () if then is None else then.functions
        fn_blobs, reply = await self._with_functions(
            self._complete_direct, run_keys, args, functions
        )
        result = _completion_result(reply)
        if then is None or len(reply) < 5:
            return result
        started = _fetched(
            reply[4], then.outputs, then.functions, fn_blobs, then.constants, dict(then.lists)
        )
        return replace(result, started=started)

    async def expand(self, run_id: str, expansion: Expansion) -> CompletionResult:
        x = expansion
        route = _Routing(run_id, x.worker)
        event = {k: v for k, v in x.event.items() if k not in ("type", "task", "width")}
        args: list[Any] = [
            x.root,
            x.width,
            _pack_blobs(x.items),
            x.item_base,
            x.element_base,
            _pack(route.gathers(x.maps)),
            -1 if x.worker is None else x.worker,
            keys.RUN_TTL_S,
            self._lease_ms,
            _pack_event(event),
        ]
        reply = await self._expand(keys=_state_keys(run_id) + route.inbox_keys, args=args)
        return _completion_result(reply)

    async def fail(self, run_id: str, record: ErrorRecord) -> bool:
        args: list[Any] = [record.task, record.to_blob()]
        for k, v in record.as_event().items():
            args += [k, v]
        ok = await self._fail(keys=keys.fail_keys(run_id), args=args)
        return bool(ok)

    async def cancel(self, run_id: str, reason: str) -> bool:
        ok = await self._cancel(keys=[keys.meta(run_id), keys.events(run_id)], args=[reason])
        return bool(ok)

    async def append_event(self, run_id: str, event: Event) -> str:
        # NOMKSTREAM: an event for a run whose stream is gone must not re-create it (no TTL).
        entry_id = await self._r.execute_command(
            "XADD", keys.events(run_id), "NOMKSTREAM", "*", *_flat(event)
        )
        return "" if entry_id is None else entry_id.decode()

    async def append_events(self, run_id: str, batch: Sequence[Event]) -> None:
        if not batch:
            return
        p = self._r.pipeline(transaction=False)
        for event in batch:
            p.execute_command("XADD", keys.events(run_id), "NOMKSTREAM", "*", *_flat(event))
        await p.execute()

    @property
    def _lease_ms(self) -> int:
        return int(self.lease_ttl_s * 1000)

    async def renew(self, run_id: str, members: Sequence[str]) -> None:
        if members:
            await self._renew(keys=[keys.leases(run_id)], args=[self._lease_ms, *members])

    def renew_blocking(self, run_id: str, members: Sequence[str]) -> None:
        if not members:
            return
        if self._sync_renew is None:  # a connection of its own, made the first time
            import redis

            sync = redis.Redis.from_url(self.url, client_name=self.name)
            self._sync_renew = sync.register_script(scripts.RENEW)
        self._sync_renew(keys=[keys.leases(run_id)], args=[self._lease_ms, *members])

    async def release(
        self, run_id: str, members: Sequence[str], event: Event | None = None
    ) -> None:
        if event is None:
            if members:
                await self._r.zrem(keys.leases(run_id), *members)
            return
        p = self._r.pipeline(transaction=False)
        if members:
            p.zrem(keys.leases(run_id), *members)
        p.execute_command("XADD", keys.events(run_id), "NOMKSTREAM", "*", *_flat(event))
        await p.execute()

    async def hand_off(self, run_id: str, members: Sequence[str]) -> None:
        if members:
            await self._handoff(keys=[keys.leases(run_id)], args=[self._lease_ms, *members])

    async def crashed(
        self, run_id: str, task: int, how: str, worker: str = "", requeue: bool = False
    ) -> int:
        args: list[Any] = [task, how, worker, int(requeue), self._lease_ms]
        return int(await self._crashed(keys=keys.crash_keys(run_id), args=args))

    async def expired(self, run_id: str) -> list[str] | None:
        reply = await self._expired(
            keys=[
                keys.meta(run_id),
                keys.leases(run_id),
                keys.crashes(run_id),
                keys.events(run_id),
            ],
            args=[self._lease_ms],
        )
        if reply == -1:
            return None
        return [m.decode() for m in reply]

    async def read_events(
        self, run_id: str, after: str = "0", block_s: float | None = None, count: int = 1000
    ) -> list[tuple[str, Event]]:
        block = None if block_s is None else max(1, int(block_s * 1000))
        reply = await self._r.xread({keys.events(run_id): after}, count=count, block=block)
        if not reply:
            return []
        [(_key, entries)] = reply
        return [(i.decode(), _decode_event(fields)) for i, fields in entries]

    async def events_range(self, run_id: str, count: int | None = None) -> list[tuple[str, Event]]:
        entries = await self._r.xrange(keys.events(run_id), count=count)
        return [(i.decode(), _decode_event(fields)) for i, fields in entries]

    async def pop_inbox(self, run_id: str, worker: int, block_s: float) -> list[int]:
        reply = await self._r.execute_command(
            "BLMPOP", block_s, 1, keys.inbox(run_id, worker), "LEFT", "COUNT", _INBOX_BATCH
        )
        if not reply:
            return []
        return [int(t) for t in reply[1]]

    async def run_ended(self, run_id: str) -> bool:
        meta = keys.meta(run_id)
        p = self._r.pipeline(transaction=False)
        p.exists(meta)
        p.hget(meta, "ended")
        exists, ended = await p.execute()
        return not exists or ended is not None

    async def task_states(self, run_id: str, tasks: Sequence[int]) -> dict[int, bool | None]:
        if not tasks:
            return {}
        raw = await self._r.hmget(keys.outputs(run_id), [str(t) for t in tasks])
        return {t: None if b is None else bool(b) for t, b in zip(tasks, raw, strict=True)}

    async def results(
        self, run_id: str, tasks: Sequence[int], lists: Mapping[int, int] | None = None
    ) -> Fetched:
        return await self.fetch(run_id, tasks, lists=lists)

    async def errors(self, run_id: str) -> dict[int, bytes]:
        raw = await self._r.hgetall(keys.errors(run_id))
        return {int(k): v for k, v in raw.items()}

    async def keep_value(self, value_id: str, blob: bytes, ttl_s: float) -> None:
        await self._r.set(keys.persisted(value_id), blob, px=max(1, int(ttl_s * 1000)))

    async def kept_value(self, value_id: str) -> bytes | None:
        blob: bytes | None = await self._r.get(keys.persisted(value_id))
        return blob

    async def release_value(self, value_id: str) -> bool:
        return bool(await self._r.delete(keys.persisted(value_id)))

    async def cleanup(self, run_id: str, extra_keys: Sequence[str]) -> None:
        events_ttl = await self._r.hget(keys.meta(run_id), "events_ttl")
        p = self._r.pipeline(transaction=False)
        p.delete(*keys.fixed_run_keys(run_id), *extra_keys)
        p.expire(keys.events(run_id), int(events_ttl or keys.EVENTS_TTL_S))
        await p.execute()

    async def run_keys(self, run_id: str) -> list[str]:
        found = [k.decode() async for k in self._r.scan_iter(match=keys.run(run_id, "*"))]
        return sorted(found)

    async def recent_runs(self, limit: int = 20) -> list[tuple[str, float]]:
        """Run ids submitted to this server, newest first, while their event streams live."""
        raw = await self._r.zrevrange(keys.RUNS_INDEX, 0, limit - 1, withscores=True)
        return [(rid.decode(), float(score)) for rid, score in raw]

    async def close(self) -> None:
        await self._r.aclose()


def _unreachable_as_storage_error(cls: type[RedisStorage]) -> type[RedisStorage]:
    """Every protocol call: a server that stays unreachable after the client's retries, or one
    that refuses writes because it is full (``maxmemory``), becomes a
    :class:`~shoal.errors.StorageError` naming the server (password redacted): a raw redis-py
    exception never reaches the user."""

    def wrap(fn: Any) -> Any:
        @functools.wraps(fn)
        async def call(self: RedisStorage, *args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(self, *args, **kwargs)
            except (RedisConnectionError, RedisTimeoutError, OSError) as e:
                raise StorageError(
                    f"the Redis server at {redact_url(self.url)} cannot be reached: {e}"
                ) from e
            except RedisOutOfMemoryError as e:
                raise StorageError(
                    f"the Redis server at {redact_url(self.url)} is full: it refuses writes "
                    f"past its maxmemory setting ({e}); free memory there or raise maxmemory"
                ) from e

        return call

    for name, fn in list(vars(cls).items()):
        if inspect.iscoroutinefunction(fn) and not name.startswith("_") and name != "close":
            setattr(cls, name, wrap(fn))
    return cls


def _state_keys(run_id: str) -> list[str]:
    """The keys COMPLETE and EXPAND share, in the order the scripts expect (inboxes follow)."""
    return [
        keys.outputs(run_id),
        keys.pending(run_id),
        keys.started(run_id),
        keys.meta(run_id),
        keys.events(run_id),
        keys.leases(run_id),
        keys.widths(run_id),
        keys.constants(run_id),
        keys.crashes(run_id),
    ]


class _Routing:
    """Downstream lists as the scripts take them: each pinned task's inbox becomes an index
    into the inbox keys that follow the fixed ones."""

    def __init__(self, run_id: str, worker: int | None) -> None:
        self.run_id, self.worker = run_id, worker
        self.inbox_keys: list[str] = []
        self._index: dict[int, int] = {}

    def down(self, downstream: Sequence[Downstream]) -> list[tuple[int, int, int, int]]:
        out = []
        for d in downstream:
            idx = 0
            if d.worker is not None and d.worker != self.worker:
                if d.worker not in self._index:
                    self.inbox_keys.append(keys.inbox(self.run_id, d.worker))
                    self._index[d.worker] = len(self.inbox_keys)
                idx = self._index[d.worker]
            out.append((d.task, d.ndeps, -1 if d.worker is None else d.worker, idx))
        return out

    def gathers(self, gathers: Sequence[Gather]) -> list[Any]:
        out = []
        for g in gathers:
            flat: list[str] = []
            for k, v in g.event.items():
                if k not in ("type", "task", "width"):
                    flat += [k, v]
            out.append([g.map, int(g.is_output), self.down(g.downstream), flat])
        return out


def _completion_result(reply: Any) -> CompletionResult:
    if reply[0] != 1:
        return CompletionResult(first=False, ready=[], invoke_workers=[], run_finished=False)
    _, ready, invoke, finished = reply[:4]
    return CompletionResult(
        first=True,
        ready=[int(t) for t in ready],
        invoke_workers=[int(w) for w in invoke],
        run_finished=bool(finished),
    )


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


def _pack_blobs(blobs: Sequence[bytes]) -> bytes:
    """Binary values for a script: the server's cmsgpack reads msgpack's old raw type, not bin."""
    return msgpack.packb(list(blobs), use_bin_type=False)  # type: ignore[no-any-return]


def _flat(event: Event) -> list[str]:
    """An event's fields and values, alternating (as XADD and the scripts take them)."""
    flat: list[str] = []
    for k, v in event.items():
        flat += [k, v]
    return flat


def _pack_event(event: Event) -> bytes:
    """An event as one msgpack array (for the scripts)."""
    return _pack(_flat(event))


def _decode_event(fields: dict[bytes, bytes]) -> Event:
    return {k.decode(): v.decode() for k, v in fields.items()}


_unreachable_as_storage_error(RedisStorage)


def _pack_start(then: TaskStart) -> bytes:
    """A start riding with a completion, as COMPLETE takes it (see ``scripts.COMPLETE``)."""
    return _pack(
        [
            then.task,
            int(then.if_ready),
            _flat(then.event),
            list(then.outputs),
            [h.hex() for h in then.constants],
            list(then.lease),
            list(then.lists.items()),
            int(then.rerun),
        ]
    )


def _fetched(
    reply: Any,
    outputs: Sequence[int],
    functions: Sequence[bytes],
    fn_blobs: Sequence[bytes | None],
    constants: Sequence[bytes],
    lists: Mapping[int, int],
) -> Fetched:
    """START's reply (alone or inside COMPLETE's) as a :class:`Fetched`."""
    outs, consts, got_lists, crashed, ended = reply
    if ended:
        return Fetched(outputs={}, functions={}, constants={}, ended=ended == 1, done=ended == 2)
    return Fetched(
        outputs={t: b for t, b in zip(outputs, outs, strict=True) if b},
        functions={h: b for h, b in zip(functions, fn_blobs, strict=True) if b},
        constants={h: b for h, b in zip(constants, consts, strict=True) if b},
        lists={
            m: list(got)
            for m, got in zip(lists, got_lists, strict=True)
            if got is not None and all(got)  # every element's output is there
        },
        crashes=tuple(crashed.decode().split("\n")) if crashed else (),
    )
