"""shoal: Python task graphs on serverless-style workers with no central scheduler.

>>> import shoal
>>> @shoal.task
... def add(x, y):
...     return x + y
>>> add(add(1, 2), add(3, 4)).compute(scheduler="sync")
10
"""

from importlib import metadata as _metadata
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from . import backends, optimizations
from .config import Settings
from .errors import (
    ConfigError,
    GraphError,
    PayloadError,
    RunCancelled,
    RunTimeout,
    ShoalError,
    StorageError,
    TaskError,
    UsageError,
)
from .maps import MapNode, map
from .persist import Persisted
from .task import Node, TaskFunction, TaskOptions, task

if _TYPE_CHECKING:
    from . import planners
    from .run import Run
    from .session import Session, compute, simulate

#: Loaded on first use: a worker process imports ``shoal`` but never the client side.
_LAZY = {"Run": "run", "Session": "session", "compute": "session", "simulate": "session"}


def __getattr__(name: str) -> _Any:
    import importlib

    if name == "planners":  # client side only: workers never load it
        value = importlib.import_module(".planners", __name__)
        globals()[name] = value
        return value
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'shoal' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | {"planners"})


# One version number, Cargo's: maturin writes it into the package metadata at build time.
__version__ = _metadata.version("shoal")

__all__ = [
    "ConfigError",
    "GraphError",
    "MapNode",
    "Node",
    "PayloadError",
    "Persisted",
    "Run",
    "RunCancelled",
    "RunTimeout",
    "Session",
    "Settings",
    "ShoalError",
    "StorageError",
    "TaskError",
    "TaskFunction",
    "TaskOptions",
    "UsageError",
    "__version__",
    "backends",
    "compute",
    "map",
    "optimizations",
    "planners",
    "simulate",
    "task",
]
