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


def Spread(per_worker: int = 1) -> Optimization:
    """The opposite of :func:`Cluster`: when this task completes (or, on a root, when the run
    starts), the flexible tasks that became ready go to workers ``per_worker`` at a time,
    whatever the platform's parallelism; the completing worker keeps the first share.
    ``Spread(1)`` on every task is WUKONG's policy (``shoal.planners.Wukong``)."""
    found = Optimization("spread", {"per_worker": per_worker})
    check(found)
    return found


def _positive(kind: str, name: str, value: object, optional: bool) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        more = " or None" if optional else ""
        raise UsageError(
            f"optimization '{kind}': {name} must be an integer >= 1{more}, got {value!r}"
        )


def _known(kind: str, params: Params, names: set[str]) -> None:
    unknown = sorted(set(params) - names)
    if unknown:
        raise UsageError(f"optimization '{kind}': unknown parameter(s) {unknown}")


def _check_cluster(params: Params) -> None:
    _known("cluster", params, {"max_tasks"})
    _positive("cluster", "max_tasks", params.get("max_tasks"), optional=True)


def _check_spread(params: Params) -> None:
    _known("spread", params, {"per_worker"})
    _positive("spread", "per_worker", params.get("per_worker"), optional=False)


#: Each kind's parameter check.
KINDS: dict[str, Callable[[Params], None]] = {"cluster": _check_cluster, "spread": _check_spread}
#: Kinds that decide where a completion's ready tasks go: one task may carry one of them.
PLACEMENT = {"cluster", "spread"}


def check_together(optimizations: list[Optimization]) -> None:
    """Optimizations of one task compose; two that would decide the same thing are refused
    rather than one silently winning."""
    placing = sorted({o.kind for o in optimizations} & PLACEMENT)
    if len(placing) > 1:
        raise UsageError(
            f"optimizations {placing} both decide where ready tasks go: give a task one"
        )
    kinds = [o.kind for o in optimizations]
    twice = sorted({k for k in kinds if kinds.count(k) > 1})
    if twice:
        raise UsageError(f"optimization {twice[0]!r} is given twice")


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
