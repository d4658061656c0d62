"""The optimization kinds shoal knows, their constructors and the check of their parameters.

Kept free of the runtime so that a plan is checked where it is built (``Plan.check``) without
importing the worker.
"""

from __future__ import annotations

from collections.abc import Callable

from .. import _core
from ..errors import UsageError

Optimization = _core.Optimization
Params = dict[str, bool | int | float | str | list[int]]


def Cluster(max_tasks: int | None = None) -> Optimization:
    """Task clustering on a fan-out: when this task completes, its worker keeps up to
    ``max_tasks`` (None: all) of the flexible tasks the completion made ready and runs them
    itself, one after the other; the others are handed on as without it."""
    params: Params = {} if max_tasks is None else {"max_tasks": max_tasks}
    found = Optimization("cluster", params)
    check(found)
    return found


def _check_cluster(params: Params) -> None:
    unknown = sorted(set(params) - {"max_tasks"})
    if unknown:
        raise UsageError(f"optimization 'cluster': unknown parameter(s) {unknown}")
    limit = params.get("max_tasks")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise UsageError(
            f"optimization 'cluster': max_tasks must be an integer >= 1 or None, got {limit!r}"
        )


#: Each kind's parameter check.
KINDS: dict[str, Callable[[Params], None]] = {"cluster": _check_cluster}


def register(kind: str, checker: Callable[[Params], None]) -> None:
    """Makes ``kind`` known to plans (``checker`` raises UsageError for bad parameters), for
    an optimization defined in Python alone: a policy of your own acts on it."""
    if not isinstance(kind, str) or not kind:
        raise UsageError(f"an optimization kind must be a non-empty string, got {kind!r}")
    if kind in KINDS and KINDS[kind] is not checker:
        raise UsageError(f"optimization {kind!r} is registered already")
    KINDS[kind] = checker


def check(optimization: object) -> None:
    """Raises :class:`~shoal.errors.UsageError` for an unknown kind or bad parameters."""
    if not isinstance(optimization, Optimization):
        raise UsageError(
            f"an optimization must be a shoal.planning.Optimization (e.g. "
            f"shoal.optimizations.Cluster()), got {type(optimization).__name__}"
        )
    checker = KINDS.get(optimization.kind)
    if checker is None:
        raise UsageError(
            f"unknown optimization {optimization.kind!r}; known: {', '.join(sorted(KINDS))} "
            f"(shoal.optimizations.register makes a new one known)"
        )
    checker(optimization.params)
