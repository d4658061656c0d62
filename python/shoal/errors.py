"""The exceptions shoal raises. Every one derives from :class:`ShoalError`."""

from __future__ import annotations

import contextlib
import types
from typing import Any


class ShoalError(Exception):
    """Base class of every error shoal raises on purpose."""


class UsageError(ShoalError, TypeError):
    """shoal was called wrongly: a bad task option, ``shoal.map`` over something that is not a
    list, a timeout that is not a number. Raised at once, before anything runs."""


class GraphError(ShoalError, ValueError):
    """The graph itself is wrong: a cycle, a node from outside the graph, a bad assignment."""


class ConfigError(ShoalError, ValueError):
    """A bad or missing setting; the message names the setting."""


class PayloadError(ShoalError):
    """A payload could not be decoded: truncated, corrupt, unknown version, or badly signed."""


class StorageError(ShoalError, ConnectionError):
    """The store (Redis) cannot be reached, after retrying with backoff; or a run's state is
    gone from it (a restart without persistence)."""


class RunTimeout(ShoalError, TimeoutError):
    """A run did not finish within its ``timeout``."""


class RunCancelled(ShoalError):
    """The run was stopped before it ended: ``Run.cancel()``, or its caller was interrupted."""


class TaskError(ShoalError):
    """A task failed after its retries.

    The attributes describe the remote failure; ``str()`` shows the task, the exception type, the
    message and the remote traceback. When the task's exception could be rebuilt here, the error
    is also an instance of its type (``except KeyError`` catches it, as with Ray's
    ``RayTaskError(KeyError)``), has its ``args`` and attributes, keeps it as ``cause``, and its
    traceback ends in the task's own frames, so ``pdb.pm()`` stops at the user's line.
    """

    def __init__(
        self,
        task: str,
        exc_type: str,
        message: str,
        traceback: str = "",
        *,
        attempts: int = 1,
        worker: str | None = None,
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(task, exc_type, message)
        self._describe(task, exc_type, message, traceback, attempts, worker, cause)

    def _describe(
        self,
        task: str,
        exc_type: str,
        message: str,
        traceback: str,
        attempts: int,
        worker: str | None,
        cause: BaseException | None,
    ) -> None:
        self.task = task
        self.exc_type = exc_type
        self.message = message
        self.traceback = traceback
        self.attempts = attempts
        self.worker = worker
        #: The task's exception as it was raised (rebuilt here), if it could travel.
        self.cause = cause

    @classmethod
    def of(
        cls,
        task: str,
        exc_type: str,
        message: str,
        traceback: str = "",
        *,
        attempts: int = 1,
        worker: str | None = None,
        cause: BaseException | None = None,
        like: type[BaseException] | None = None,
    ) -> TaskError:
        """The error for a failed task, an instance of the type of ``cause`` (or of ``like``,
        for a failure that did not bring its exception) where a class can derive from both."""
        kind = type(cause) if cause is not None else like
        typed = _typed(kind) if kind is not None else None
        args = cause.args if cause is not None else (message,)
        err: TaskError | None = None
        if typed is not None:
            with contextlib.suppress(Exception):  # a type whose own __new__ refuses its args
                err = typed(*args)
        if err is None:
            return cls(
                task, exc_type, message, traceback, attempts=attempts, worker=worker, cause=cause
            )
        if cause is not None:
            _copy_fields(cause, err)
            err.__dict__.update(vars(cause))
        err.args = args
        err._describe(task, exc_type, message, traceback, attempts, worker, cause)
        return err

    def __str__(self) -> str:
        tries = f" after {self.attempts} attempts" if self.attempts > 1 else ""
        head = f"task '{self.task}' failed{tries}: {self.exc_type}: {self.message}"
        if self.traceback:
            return f"{head}\n\nRemote traceback:\n{self.traceback.rstrip()}"
        return head

    def __reduce__(self) -> tuple[object, ...]:
        kwargs = {"attempts": self.attempts, "worker": self.worker, "cause": self.cause}
        return (
            _rebuild_task_error,
            (self.task, self.exc_type, self.message, self.traceback, kwargs),
        )


#: The TaskError subclass for each exception type rebuilt so far.
_TYPED: dict[type[BaseException], type[TaskError] | None] = {}


def _typed(kind: type[BaseException]) -> type[TaskError] | None:
    """``TaskError(kind)``: a class that is both, or None where that cannot be (a layout
    conflict, a type that is not an ``Exception``, one of shoal's own)."""
    if kind in _TYPED:
        return _TYPED[kind]
    if issubclass(kind, TaskError):  # a task's own compute() failed: its type already is one
        return kind
    typed: type[TaskError] | None = None
    if issubclass(kind, Exception) and not issubclass(kind, ShoalError):
        name = f"TaskError({kind.__name__})"
        try:
            body = {"__module__": __name__, "__qualname__": name, "__init__": _filled_later}
            typed = type(name, (TaskError, kind), body)
        except TypeError:
            typed = None
    _TYPED[kind] = typed
    return typed


#: Fields every exception has, which the rebuilt error sets its own way.
_OWN_FIELDS = {"args", "__traceback__", "__context__", "__cause__", "__suppress_context__"}


def _copy_fields(cause: BaseException, err: BaseException) -> None:
    """Copies the fields built-in exception types keep outside ``__dict__`` (OSError's
    ``errno`` and ``filename``, ImportError's ``name``, StopIteration's ``value``, ...)."""
    for base in type(cause).__mro__:
        if base.__module__ != "builtins":
            continue
        for name, field in vars(base).items():
            plain = isinstance(field, types.MemberDescriptorType | types.GetSetDescriptorType)
            if plain and name not in _OWN_FIELDS and not name.startswith("__"):
                with contextlib.suppress(Exception):
                    setattr(err, name, getattr(cause, name))


def _filled_later(self: BaseException, *args: Any) -> None:
    """The ``__init__`` of a ``TaskError(kind)``: ``TaskError.of`` fills it in."""


def _rebuild_task_error(
    task: str, exc_type: str, message: str, tb: str, kwargs: dict[str, Any]
) -> TaskError:
    return TaskError.of(task, exc_type, message, tb, **kwargs)


__all__ = [
    "ConfigError",
    "GraphError",
    "PayloadError",
    "RunCancelled",
    "RunTimeout",
    "ShoalError",
    "TaskError",
    "UsageError",
]
