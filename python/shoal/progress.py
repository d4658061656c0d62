"""A progress bar fed by completion events, shown on a terminal for runs longer than a second."""

from __future__ import annotations

import sys
import time
from types import TracebackType

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .events import Fields, MapExpanded, TaskCompleted, decode

SHOW_AFTER_S = 1.0


class RunProgress:
    def __init__(self, total: int, label: str, enabled: bool | None = None) -> None:
        self.total = total
        self.label = label
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.done = 0
        self.started = time.monotonic()
        self._bar: Progress | None = None
        self._task: object = None

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
        if not self.enabled:
            return
        if self._bar is None and time.monotonic() - self.started >= SHOW_AFTER_S:
            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=self.total)
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done)  # type: ignore[arg-type]

    def __enter__(self) -> RunProgress:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
