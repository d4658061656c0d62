"""Where run history is kept: three stores behind one small protocol.

The history's logic (:mod:`.history`) is written once, as batches of plain operations on
lists, hashes and strings; a store applies a batch in one round trip:

- :class:`RedisHistoryStore`: a Redis/Valkey server, the run server by default or another one
  (``metrics_url``) so that short-lived run servers do not take the history with them;
- :class:`DirectoryHistoryStore`: one file per key under a directory (the default when the
  runs go to an embedded server that lives only as long as its session); a lock file
  serializes writers, so sessions running side by side never lose each other's samples;
- :class:`MemoryHistoryStore`: a process's memory (tests, ``metrics_url="memory://"``).

Lists are kept newest first and trimmed to a bound on every push; hashes hold running sums
(incremented, never rewritten). No operation lists keys by pattern.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import msgpack


@dataclass
class Write:
    """One batch of changes."""

    #: (list key, items newest last, bound): pushed to the front, then trimmed to ``bound``.
    pushes: list[tuple[str, list[bytes], int]] = field(default_factory=list)
    #: (hash key, field, amount): running sums.
    incrs: list[tuple[str, str, float]] = field(default_factory=list)
    #: (hash key, field, value).
    hsets: list[tuple[str, str, bytes]] = field(default_factory=list)
    #: (string key, value, lifetime in seconds or None). A lifetime holds on Redis; the
    #: directory and memory stores keep the value until it is deleted (their bounds are
    #: counts, and the directory is its user's own).
    sets: list[tuple[str, bytes, float | None]] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)


@dataclass
class Read:
    """One batch of reads."""

    #: (list key, how many of the newest).
    lists: list[tuple[str, int]] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    strings: list[str] = field(default_factory=list)


@dataclass
class Answer:
    lists: dict[str, list[bytes]] = field(default_factory=dict)
    hashes: dict[str, dict[str, bytes]] = field(default_factory=dict)
    strings: dict[str, bytes | None] = field(default_factory=dict)


class HistoryStore(Protocol):
    #: Round trips so far (a test counts the planning path's reads).
    round_trips: int

    async def read(self, r: Read) -> Answer: ...

    async def write(self, w: Write) -> None: ...

    async def close(self) -> None: ...


# -- memory --------------------------------------------------------------------------------


@dataclass
class _Tables:
    lists: dict[str, list[bytes]] = field(default_factory=dict)
    hashes: dict[str, dict[str, bytes]] = field(default_factory=dict)
    strings: dict[str, bytes] = field(default_factory=dict)

    def apply(self, w: Write) -> set[str]:
        """Applies ``w``; returns the keys it changed."""
        touched: set[str] = set()
        for key, items, bound in w.pushes:
            kept = list(reversed(items)) + self.lists.get(key, [])
            self.lists[key] = kept[:bound]
            touched.add(key)
        for key, name, amount in w.incrs:
            h = self.hashes.setdefault(key, {})
            h[name] = _number(float(h.get(name, b"0")) + amount)
            touched.add(key)
        for key, name, value in w.hsets:
            self.hashes.setdefault(key, {})[name] = value
            touched.add(key)
        for key, value, _ttl in w.sets:
            self.strings[key] = value
            touched.add(key)
        for key in w.deletes:
            for table in (self.lists, self.hashes, self.strings):
                table.pop(key, None)
            touched.add(key)
        return touched

    def answer(self, r: Read) -> Answer:
        return Answer(
            {k: list(self.lists.get(k, [])[:n]) for k, n in r.lists},
            {k: dict(self.hashes.get(k, {})) for k in r.hashes},
            {k: self.strings.get(k) for k in r.strings},
        )

    def all_keys(self) -> Iterator[str]:
        yield from self.lists
        yield from self.hashes
        yield from self.strings


def _number(x: float) -> bytes:
    return repr(int(x) if x.is_integer() else x).encode()


class MemoryHistoryStore:
    def __init__(self) -> None:
        self.tables = _Tables()
        self.round_trips = 0

    async def read(self, r: Read) -> Answer:
        self.round_trips += 1
        return self.tables.answer(r)

    async def write(self, w: Write) -> None:
        self.round_trips += 1
        self.tables.apply(w)

    def key_count(self) -> int:
        return sum(1 for _ in self.tables.all_keys())

    async def close(self) -> None:
        pass


# -- a directory ---------------------------------------------------------------------------


class DirectoryHistoryStore:
    """One msgpack file per key, named by the key's hex; writes under an exclusive lock."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.round_trips = 0

    def _file(self, key: str) -> Path:
        return self.path / (key.encode().hex() + ".mp")

    def _load(self, key: str) -> Any:
        try:
            return msgpack.unpackb(self._file(key).read_bytes(), strict_map_key=False)
        except (FileNotFoundError, ValueError, msgpack.UnpackException):
            return None  # absent, or a torn file of a writer that died: as if absent

    def _tables(self, keys: set[str]) -> _Tables:
        t = _Tables()
        for key in keys:
            found = self._load(key)
            if isinstance(found, dict) and "list" in found:
                t.lists[key] = list(found["list"])
            elif isinstance(found, dict) and "hash" in found:
                t.hashes[key] = dict(found["hash"])
            elif isinstance(found, dict) and "str" in found:
                t.strings[key] = found["str"]
        return t

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "r+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, w: Write) -> None:
        keys = {k for k, _, _ in w.pushes} | {k for k, _, _ in w.incrs}
        keys |= {k for k, _, _ in w.hsets} | {k for k, _, _ in w.sets} | set(w.deletes)
        with self._locked():
            t = self._tables(keys)
            for key in t.apply(w):
                path = self._file(key)
                if key in t.lists:
                    body: dict[str, Any] = {"list": t.lists[key]}
                elif key in t.hashes:
                    body = {"hash": t.hashes[key]}
                elif key in t.strings:
                    body = {"str": t.strings[key]}
                else:
                    path.unlink(missing_ok=True)
                    continue
                # Created 0600 under an unpredictable name (mkstemp: O_EXCL, no symlink
                # followed), then renamed: a reader sees the old file or the new, never half.
                fd, tmp = tempfile.mkstemp(dir=self.path, suffix=".tmp")
                with os.fdopen(fd, "wb") as f:
                    f.write(msgpack.packb(body, use_bin_type=True))
                os.replace(tmp, path)

    async def read(self, r: Read) -> Answer:
        self.round_trips += 1
        keys = {k for k, _ in r.lists} | set(r.hashes) | set(r.strings)
        return await asyncio.to_thread(lambda: self._tables(keys).answer(r))

    async def write(self, w: Write) -> None:
        self.round_trips += 1
        await asyncio.to_thread(self._write, w)

    def key_count(self) -> int:
        return sum(1 for p in self.path.glob("*.mp")) if self.path.exists() else 0

    async def close(self) -> None:
        pass


# -- Redis ---------------------------------------------------------------------------------


class RedisHistoryStore:
    """Each batch is one pipeline (not a transaction: every operation is an increment, a
    bounded push or an overwrite, so a batch half applied by a dying client stays coherent)."""

    def __init__(self, client: Any, *, owned: bool = False) -> None:
        self._r = client
        self._owned = owned
        self.round_trips = 0

    @classmethod
    def from_url(cls, url: str) -> RedisHistoryStore:
        import redis.asyncio as aioredis

        return cls(aioredis.from_url(url, client_name="shoal-history"), owned=True)

    async def read(self, r: Read) -> Answer:
        self.round_trips += 1
        p = self._r.pipeline(transaction=False)
        for key, n in r.lists:
            p.lrange(key, 0, n - 1)
        for key in r.hashes:
            p.hgetall(key)
        for key in r.strings:
            p.get(key)
        replies = iter(await p.execute())
        out = Answer()
        for key, _ in r.lists:
            out.lists[key] = list(next(replies))
        for key in r.hashes:
            out.hashes[key] = {k.decode(): v for k, v in next(replies).items()}
        for key in r.strings:
            out.strings[key] = next(replies)
        return out

    async def write(self, w: Write) -> None:
        self.round_trips += 1
        p = self._r.pipeline(transaction=False)
        for key, items, bound in w.pushes:
            if items:
                p.lpush(key, *items)
                p.ltrim(key, 0, bound - 1)
        for key, name, amount in w.incrs:
            p.hincrbyfloat(key, name, amount)
        for key, name, value in w.hsets:
            p.hset(key, name, value)
        for key, value, ttl in w.sets:
            p.set(key, value, ex=None if ttl is None else max(1, int(ttl)))
        if w.deletes:
            p.delete(*w.deletes)
        await p.execute()

    async def close(self) -> None:
        if self._owned:
            await self._r.aclose()
