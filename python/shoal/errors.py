"""The exceptions shoal raises. Every one derives from :class:`ShoalError`."""

from __future__ import annotations


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
    message and the remote traceback.
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
    ) -> None:
        self.task = task
        self.exc_type = exc_type
        self.message = message
        self.traceback = traceback
        self.attempts = attempts
        self.worker = worker
        super().__init__(task, exc_type, message)

    def __str__(self) -> str:
        tries = f" after {self.attempts} attempts" if self.attempts > 1 else ""
        head = f"task '{self.task}' failed{tries}: {self.exc_type}: {self.message}"
        if self.traceback:
            return f"{head}\n\nRemote traceback:\n{self.traceback.rstrip()}"
        return head

    def __reduce__(self) -> tuple[object, ...]:
        kwargs = {"attempts": self.attempts, "worker": self.worker}
        return (
            _rebuild_task_error,
            (self.task, self.exc_type, self.message, self.traceback, kwargs),
        )


def _rebuild_task_error(
    task: str, exc_type: str, message: str, tb: str, kwargs: dict[str, object]
) -> TaskError:
    return TaskError(task, exc_type, message, tb, **kwargs)  # type: ignore[arg-type]


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
