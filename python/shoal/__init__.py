"""shoal: Python task graphs on serverless-style workers with no central scheduler.

>>> import shoal
>>> @shoal.task
... def add(x, y):
...     return x + y
>>> add(add(1, 2), add(3, 4)).compute(scheduler="sync")
10
"""

from importlib import metadata as _metadata

from . import backends
from .config import Settings
from .errors import (
    ConfigError,
    GraphError,
    PayloadError,
    RunTimeout,
    ShoalError,
    StorageError,
    TaskError,
)
from .maps import MapNode, map
from .session import Run, Session, compute
from .task import Node, TaskFunction, TaskOptions, task

# One version number, Cargo's: maturin writes it into the package metadata at build time.
__version__ = _metadata.version("shoal")

__all__ = [
    "ConfigError",
    "GraphError",
    "MapNode",
    "Node",
    "PayloadError",
    "Run",
    "RunTimeout",
    "Session",
    "Settings",
    "ShoalError",
    "StorageError",
    "TaskError",
    "TaskFunction",
    "TaskOptions",
    "__version__",
    "backends",
    "compute",
    "map",
    "task",
]
