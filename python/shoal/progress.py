"""A progress bar fed by a run's events, shown on a terminal for runs longer than a second.

It counts TASK_COMPLETED against the task count (grown by MAP_EXPANDED), and keeps the tasks
started and not finished, so that one running longer than :data:`LONG_TASK_S` is named on the
line (a hung task is visible, not a frozen bar). The waiting client calls it with every event
and with an empty entry when a read brought none, so the line moves on its own.
One bar shows at a time: runs waited for in several threads at once stay quiet but the first.
While it shows, what the client prints, and what worker processes print (forwarded by their
pool), appears above it.
"""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType

import rich
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .events import Fields, MapExpanded, TaskCompleted, TaskFailed, TaskRetry, TaskStarted, decode

SHOW_AFTER_S = 1.0
#: A task running this long is named on the progress line.
LONG_TASK_S = 10.0

#: Held by the bar on screen (rich shows one live display at a time).
_screen = threading.Lock()
_ENDS = (TaskCompleted.type, TaskFailed.type, TaskRetry.type)


def _interactive() -> bool:
    """A terminal, or a Jupyter notebook (where rich draws the bar as a widget: ipywidgets)."""
    return sys.stderr.isatty() or rich.get_console().is_jupyter


class RunProgress:
    def __init__(self, total: int, label: str, enabled: bool | None = None) -> None:
        self.total = total
        self.label = label
        self.enabled = _interactive() if enabled is None else enabled
        self.done = 0
        self.started = time.monotonic()
        #: Task id -> (name, monotonic start) of the tasks started and not ended.
        self.running: dict[str, tuple[str, float]] = {}
        self._bar: Progress | None = None
        self._task: object = None
        self._owns_screen = False

    def __call__(self, fields: Fields) -> None:
        kind = fields.get("type")
        if kind == TaskCompleted.type:
            self.done += 1
        elif kind == MapExpanded.type:  # a map's elements become known at run time
            ev = decode(fields)
            assert isinstance(ev, MapExpanded)
            self.total += ev.elements
            if self._bar is not None:
                self._bar.update(self._task, total=self.total)  # type: ignore[arg-type]
        if kind == TaskStarted.type:
            self.running[fields.get("task", "")] = (fields.get("name", "?"), time.monotonic())
        elif kind in _ENDS:
            self.running.pop(fields.get("task", ""), None)
        if not self.enabled:
            return
        if self._bar is None and time.monotonic() - self.started >= SHOW_AFTER_S:
            self._show()
        if self._bar is not None:
            self._bar.update(
                self._task,  # type: ignore[arg-type]
                completed=self.done,
                description=self.line(),
            )

    def long_running(self, now: float | None = None) -> list[tuple[str, float]]:
        """(name, seconds) of the tasks running longer than :data:`LONG_TASK_S`, longest first."""
        now = time.monotonic() if now is None else now
        found = [(name, now - t0) for name, t0 in self.running.values() if now - t0 >= LONG_TASK_S]
        return sorted(found, key=lambda f: -f[1])

    def line(self) -> str:
        """The label, and the longest-running task when one runs long."""
        slow = self.long_running()
        if not slow:
            return self.label
        name, secs = slow[0]
        more = f" (+{len(slow) - 1} more)" if len(slow) > 1 else ""
        return f"{self.label} · running {name} for {secs:.0f} s{more}"

    def _show(self) -> None:
        self._owns_screen = _screen.acquire(blocking=False)
        if not self._owns_screen:
            self.enabled = False  # another run's bar is on screen
            return
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task(self.label, total=self.total)

    def __enter__(self) -> RunProgress:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
        if self._owns_screen:
            self._owns_screen = False
            _screen.release()
