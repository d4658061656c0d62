"""Sessions: where runs go (storage + backend + settings), and the ``compute`` entry points.

``scheduler="sync"`` runs in-process, one task at a time, through the same worker code on the
in-memory store; ``scheduler="threads"`` does the same with task functions in threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Iterator
from types import TracebackType
from typing import Any, Literal, TypeVar

from .backends.base import Backend
from .backends.inprocess import InProcess
from .config import Settings
from .errors import ConfigError
from .graph import freeze
from .progress import RunProgress
from .runtime import client
from .storage.base import Storage
from .storage.memory import MemoryStorage
from .task import Node

Scheduler = Literal["sync", "threads"]
SCHEDULERS: tuple[str, ...] = ("sync", "threads")
T = TypeVar("T")


class Session:
    """Where runs go. Use as a context manager, or call :meth:`close`."""

    def __init__(
        self,
        *,
        storage: Storage | None = None,
        backend: Backend | None = None,
        settings: Settings | None = None,
        progress: bool | None = None,
    ) -> None:
        self.storage: Storage = storage if storage is not None else MemoryStorage()
        self.backend: Backend = backend if backend is not None else InProcess(threads=False)
        self.settings = settings or Settings.from_env()
        self.progress = progress
        self._started = False
        self._closed = False
        # One loop for the session's life: storage and backend state is bound to it.
        self._loop = asyncio.new_event_loop()

    @classmethod
    def for_scheduler(cls, scheduler: str) -> Session:
        if scheduler not in SCHEDULERS:
            raise ConfigError(
                f"unknown scheduler {scheduler!r}; choose one of {', '.join(SCHEDULERS)}"
            )
        return cls(backend=InProcess(threads=scheduler == "threads"))

    def compute(
        self,
        *nodes: Node,
        assignment: dict[int, int] | None = None,
        timeout: float | None = None,
    ) -> tuple[Any, ...]:
        """Runs the graph ending in ``nodes``; returns their values as a tuple."""
        if self._closed:
            raise ConfigError("this Session is closed")
        if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
            raise TypeError(f"timeout must be a positive number of seconds, got {timeout!r}")
        frozen = freeze(nodes, self.settings).with_assignment(assignment)
        if not nodes:
            return ()
        progress = RunProgress(len(frozen.graph), "shoal", self.progress)
        if isinstance(self.backend, InProcess):
            self.backend.share_functions(frozen.live_functions)

        async def go() -> list[Any]:
            if not self._started:
                await self.backend.start(self.storage, self.settings)
                self._started = True
            return await client.run_to_end(
                frozen, self.storage, self.backend, self.settings, timeout, progress
            )

        with progress:
            return tuple(_run_coroutine(self._loop, go()))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._started:
                _run_coroutine(self._loop, self._aclose())
            self._loop.close()

    async def _aclose(self) -> None:
        await self.backend.close()
        await self.storage.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<shoal.Session backend={self.backend!r} storage={type(self.storage).__name__}>"


_default: dict[str, str] = {"scheduler": "sync"}


@contextlib.contextmanager
def default_scheduler(scheduler: str) -> Iterator[None]:
    """Makes ``scheduler`` the default of ``compute()`` calls within the block (``shoal run``)."""
    if scheduler not in SCHEDULERS:
        raise ConfigError(f"unknown scheduler {scheduler!r}; choose one of {', '.join(SCHEDULERS)}")
    old = _default["scheduler"]
    _default["scheduler"] = scheduler
    try:
        yield
    finally:
        _default["scheduler"] = old


def compute(
    *nodes: Node,
    scheduler: str | None = None,
    session: Session | None = None,
    assignment: dict[int, int] | None = None,
    timeout: float | None = None,
) -> tuple[Any, ...]:
    """Computes several nodes over one shared graph; returns a tuple of their values.

    ``scheduler``: ``"sync"`` (in-process, one task at a time) or ``"threads"``. ``session``: an
    explicit :class:`Session`. ``assignment``: ``{task_id: worker_id}`` pins tasks to workers (as
    a planner would). ``timeout``: seconds before :class:`~shoal.RunTimeout`.
    """
    if session is not None and scheduler is not None:
        raise ConfigError("pass either scheduler= or session=, not both")
    if session is not None:
        return session.compute(*nodes, assignment=assignment, timeout=timeout)
    with Session.for_scheduler(scheduler or _default["scheduler"]) as s:
        return s.compute(*nodes, assignment=assignment, timeout=timeout)


def _run_coroutine(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """Runs ``coro`` on ``loop`` to the end, also when called from inside another event loop
    (a notebook): then the loop runs in a helper thread while this one waits."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return loop.run_until_complete(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = loop.run_until_complete(coro)
        except BaseException as e:
            box["error"] = e

    t = threading.Thread(target=target, name="shoal-run")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]
