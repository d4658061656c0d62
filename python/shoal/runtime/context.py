"""The worker a task runs in, for a task that computes a graph of its own.

A task may call ``compute()`` (or ``node.compute()``) itself. Without a ``scheduler`` or
``session`` of its own, that run goes where its worker's runs go: the same store and the same
platform, started from the worker's own event loop, not a second embedded server and pool inside
the worker. The worker's shell sets :data:`CURRENT` around each task's call; the task's thread
sees it (``asyncio.to_thread`` copies the context).

While a task waits for its inner run, its worker says it is *parked* (``on_park``), as when it
waits on its inbox: a pool does not count it against its size, so the inner run's tasks get
processes of their own and nesting cannot deadlock the pool. In ``sync`` mode the task runs on
the loop's own thread, which cannot wait for itself: the inner run is a ``sync`` run of its own.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..backends.base import Backend
    from ..config import Settings
    from ..storage.base import Storage


@dataclass(frozen=True, slots=True)
class WorkerContext:
    """What a task's inner run borrows from its worker."""

    storage: Storage
    backend: Backend
    settings: Settings
    #: The worker's event loop (running, in another thread than the task's unless ``inline``).
    loop: asyncio.AbstractEventLoop
    #: The task runs on the loop's own thread (``sync`` mode).
    inline: bool
    on_park: Callable[[bool], None] | None = None


#: The worker of the task running in this context, if any.
CURRENT: contextvars.ContextVar[WorkerContext | None] = contextvars.ContextVar(
    "shoal_worker", default=None
)


def current() -> WorkerContext | None:
    """The worker running the calling task, or None outside a task."""
    return CURRENT.get()
