"""The client's side of run history: where it is kept, and recording a run that ended.

Where (``metrics_url``, else ``SHOAL_METRICS_URL``):

- ``redis://...`` (``rediss://``, ``unix://``): that server;
- a path or ``file:///path``: a directory of files (:class:`DirectoryHistoryStore`);
- ``memory://``: this process only; ``off``: no history;
- unset: the run server when it is one the session connects to (it outlives the session),
  else (an embedded server, the in-memory store) the directory ``$XDG_CACHE_HOME/shoal/history``
  (``~/.cache/shoal/history``), so history survives the embedded server's end.

Recording reads the run's stream once it ended (kept with a TTL after the run's other keys are
deleted), builds its records (:mod:`shoal.metrics.records`) and adds them in two round trips.
A history that cannot be written never fails the run: it warns once per session.
"""

from __future__ import annotations

import asyncio
import os
import warnings
from pathlib import Path
from typing import Any

from .. import events
from ..config import check_redis_url, redact_url
from ..errors import ConfigError
from ..metrics.history import History
from ..metrics.records import RunRecord, run_record
from ..metrics.stores import (
    DirectoryHistoryStore,
    HistoryStore,
    MemoryHistoryStore,
    RedisHistoryStore,
)
from ..storage.base import Storage
from .submit import Submitted

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
#: Longest wait for the metric records of a buffered strategy after the run's end, seconds.
SETTLE_S = 2.0
SETTLE_POLL_S = 0.02


def default_directory() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "shoal" / "history"


def metrics_place(metrics_url: str | None) -> tuple[str, str]:
    """``(kind, where)`` of a history URL (``metrics_url``, else ``SHOAL_METRICS_URL``): kind
    ``default``, ``off``, ``memory``, ``redis`` or ``directory``. A URL it does not understand
    is a ConfigError naming what is accepted (a session checks it when it is made)."""
    url = metrics_url if metrics_url is not None else os.environ.get("SHOAL_METRICS_URL") or None
    if url is None:
        return "default", ""
    if url == "off":
        return "off", ""
    if url == "memory://":
        return "memory", ""
    if url.startswith(_REDIS_SCHEMES):
        return "redis", check_redis_url(url, "metrics_url")
    if url.startswith("file://") or "://" not in url:
        path = url.removeprefix("file://")
        if not path:
            raise ConfigError("metrics_url file:// needs a path, as in file:///var/shoal/history")
        return "directory", path
    raise ConfigError(
        f"metrics_url {redact_url(url)!r} is not understood: use redis://..., a directory "
        "path, file:///path, memory:// or off"
    )


def open_history(metrics_url: str | None, run_storage: object, external: bool) -> History | None:
    """The history a session records to (``external``: its run server outlives it)."""
    kind, where = metrics_place(metrics_url)
    store: HistoryStore
    if kind == "off":
        return None
    if kind == "default":
        client = getattr(run_storage, "client", None)
        if external and client is not None:
            store = RedisHistoryStore(client)
        else:
            store = DirectoryHistoryStore(default_directory())
    elif kind == "memory":
        store = MemoryHistoryStore()
    elif kind == "redis":
        store = RedisHistoryStore.from_url(where)
    else:
        store = DirectoryHistoryStore(Path(where).expanduser())
    return History(store)


class Recorder:
    """Records a session's runs; warns once if the history cannot be written."""

    def __init__(self, history: History) -> None:
        self.history = history
        self._warned = False

    async def record(
        self, sub: Submitted, storage: Storage, buffered: bool = False
    ) -> RunRecord | None:
        """Records ``sub``'s run. ``buffered``: its workers upload metric records after their
        completions (:mod:`shoal.metrics.upload`), so the last ones may come after the run's
        end: wait for them, a bounded time (a worker that died never sends its own)."""
        try:
            entries = await storage.events_range(sub.run_id)
            evs = [events.decode(f, entry_id) for entry_id, f in entries]
            waited = 0.0
            while buffered and entries and _unmatched(evs) and waited < SETTLE_S:
                await asyncio.sleep(SETTLE_POLL_S)
                waited += SETTLE_POLL_S
                while more := await storage.read_events(sub.run_id, entries[-1][0]):
                    entries += more  # only what came since: the stream is not read again
                    evs += [events.decode(f, entry_id) for entry_id, f in more]
            record = run_record(sub.run_id, evs)
            plan = sub.frozen.plan
            predicted: dict[int, tuple[float, float]] = {}
            if plan is not None and plan.predicted is not None:
                predicted = {t: (x.start, x.end) for t, x in plan.predicted.tasks.items()}
            await self.history.record(record, sub.frozen.graph.encode(), predicted)
            return record
        except Exception as e:  # history must never fail a run
            if not self._warned:
                self._warned = True
                warnings.warn(
                    f"shoal could not record run {sub.run_id} in its history: "
                    f"{type(e).__name__}: {e}",
                    RuntimeWarning,
                    stacklevel=2,
                )
            return None


def _unmatched(evs: list[events.Event]) -> bool:
    """Whether a completion still lacks its metric fields."""
    metrics = {(e.task, e.attempt, e.worker) for e in evs if isinstance(e, events.TaskMetrics)}
    return any(
        isinstance(e, events.TaskCompleted)
        and not e.fn
        and e.width is None
        and (e.task, e.attempt, e.worker) not in metrics
        for e in evs
    )


def describe_store(history: History | None) -> str:
    if history is None:
        return "off"
    store: Any = history.store
    if isinstance(store, DirectoryHistoryStore):
        return str(store.path)
    return type(store).__name__
