"""The decorator API: ``@shoal.task`` turns a function into a factory of lazy :class:`Node`\\ s.

Calling a task function runs nothing; it records the function, the arguments (which may hold
other nodes at any depth in lists, tuples, dicts, sets and keyword arguments) and the options.
``compute`` freezes the nodes into a graph (see :mod:`shoal.graph`) and runs it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from .errors import ShoalError, UsageError

if TYPE_CHECKING:
    from .visualize import Format

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """Per-task options. ``None`` means the default of the session or backend."""

    retries: int = 0
    memory_mb: int | None = None
    timeout_s: float | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        _check_int("retries", self.retries, minimum=0)
        if self.memory_mb is not None:
            _check_int("memory_mb", self.memory_mb, minimum=1)
        if self.timeout_s is not None:
            ok = isinstance(self.timeout_s, int | float) and not isinstance(self.timeout_s, bool)
            if not ok or not math.isfinite(self.timeout_s) or self.timeout_s <= 0:
                raise UsageError(
                    f"timeout_s must be a positive number of seconds, got {self.timeout_s!r}"
                )
        if self.name is not None and (not isinstance(self.name, str) or not self.name):
            raise UsageError(f"name must be a non-empty string, got {self.name!r}")
        if self.name is not None:
            try:
                self.name.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate: no event or message could carry it
                raise UsageError(f"name must be valid text (UTF-8), got {self.name!r}") from None

    def as_tuple(self) -> tuple[int, int | None, float | None, str | None]:
        timeout = None if self.timeout_s is None else float(self.timeout_s)
        return (self.retries, self.memory_mb, timeout, self.name)


OPTION_NAMES = tuple(f.name for f in fields(TaskOptions))


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise UsageError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _merge(opts: TaskOptions, overrides: dict[str, Any]) -> TaskOptions:
    unknown = sorted(set(overrides) - set(OPTION_NAMES))
    if unknown:
        raise ShoalError(
            f"unknown task option(s) {', '.join(map(repr, unknown))}; "
            f"valid options are {', '.join(OPTION_NAMES)}"
        )
    return replace(opts, **overrides)


if TYPE_CHECKING:
    # To a type checker a node derives from Any, so a ``Node[int]`` is accepted wherever an
    # ``int`` is: the chaining idiom ``add(add(1, 2), 3)`` checks while the task keeps its own
    # signature (names, arity, keywords). The price: the node's value type is not checked
    # against the parameter's. At run time a node is a plain object.
    _AcceptedAsAValue = Any
else:

    class _AcceptedAsAValue:
        __slots__ = ()


class Node(_AcceptedAsAValue, Generic[R]):  # type: ignore[misc]
    """A lazy call of a task function returning ``R``: nothing runs until ``compute``.

    A node may be passed wherever its value is expected, at any depth of list, tuple, dict and
    set arguments. Nodes are compared and hashed by identity: two calls with equal arguments
    are two tasks.
    """

    __slots__ = ("__weakref__", "_args", "_func", "_kwargs", "_name", "_opts")
    #: A ``shoal.map`` node (see :mod:`shoal.maps`); read by the freeze walk.
    _is_map = False

    def __init__(
        self,
        func: Callable[..., Any],
        name: str,
        opts: TaskOptions,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self._func = func
        self._name = name
        self._opts = opts.as_tuple()
        self._args = args
        self._kwargs = kwargs

    @property
    def name(self) -> str:
        """The task's display name (the ``name`` option, else the function's name)."""
        return self._name

    @property
    def func(self) -> Callable[..., Any]:
        return self._func

    def compute(self, **kwargs: Any) -> R:
        """Runs the graph that ends in this node and returns its value.

        Keyword arguments are those of :func:`shoal.compute` (``scheduler``, ``session``, ...).
        """
        from .session import compute

        value: R = compute(self, **kwargs)[0]
        return value

    def visualize(self, path: str | None = None, *, format: Format | None = None) -> str:
        """Draws the graph ending in this node (svg, png or html); returns the SVG/HTML text."""
        from .visualize import visualize

        return visualize(self, path=path, format=format)

    def __repr__(self) -> str:
        parts = [_short_repr(a) for a in self._args]
        parts += [f"{k}={_short_repr(v)}" for k, v in self._kwargs.items()]
        return f"<shoal.Node {self._name}({', '.join(parts)})>"

    def __reduce__(self) -> Any:
        raise ShoalError(
            f"a shoal Node ({self._name}) cannot be pickled: nodes may be passed to tasks only "
            "inside list, tuple, dict, set or frozenset values (not inside other objects), "
            "and must not be returned from tasks"
        )

    def __bool__(self) -> bool:
        raise ShoalError(
            f"the truth value of a lazy Node ({self._name}) is unknown until it is computed; "
            "branch inside a task instead"
        )

    def __iter__(self) -> Any:
        raise ShoalError(
            f"a lazy Node ({self._name}) cannot be iterated before it is computed (its length "
            "is unknown until then); use shoal.map(fn, node) for one task per item, or pass "
            "the whole node to a task that takes the list"
        )


def _short_repr(value: Any) -> str:
    if isinstance(value, Node):
        return f"<{value._name}>"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class TaskFunction(Generic[P, R]):
    """What ``@shoal.task`` returns: call it to get a :class:`Node`."""

    def __init__(self, func: Callable[P, R], opts: TaskOptions) -> None:
        if not callable(func):
            raise UsageError(f"@shoal.task needs a callable, got {type(func).__name__}")
        if isinstance(func, TaskFunction):
            func = func.func
        self.func: Callable[P, R] = func
        self.opts = opts
        self.name: str = opts.name or getattr(func, "__name__", None) or type(func).__name__
        functools.update_wrapper(self, func)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Node[R]:
        # Each argument may be a value or a node computing it: to a type checker a node is
        # accepted as any value (see Node), so the function's own signature applies.
        return Node(self.func, self.name, self.opts, args, dict(kwargs))

    def options(self, **overrides: Any) -> TaskFunction[P, R]:
        """A new task function with some options replaced, e.g. ``add.options(retries=5)(1, 2)``."""
        return TaskFunction(self.func, _merge(self.opts, overrides))

    def __repr__(self) -> str:
        set_opts = {
            f.name: getattr(self.opts, f.name)
            for f in fields(self.opts)
            if getattr(self.opts, f.name) != f.default
        }
        opts = "".join(f", {k}={v!r}" for k, v in set_opts.items())
        return f"<shoal.task {self.name}{opts}>"

    def __reduce__(self) -> Any:
        return (TaskFunction, (self.func, self.opts))


@overload
def task(func: Callable[P, R], /) -> TaskFunction[P, R]: ...
@overload
def task(
    *,
    retries: int = 0,
    memory_mb: int | None = None,
    timeout_s: float | None = None,
    name: str | None = None,
) -> Callable[[Callable[P, R]], TaskFunction[P, R]]: ...


def task(
    func: Callable[P, R] | None = None,
    /,
    *,
    retries: int = 0,
    memory_mb: int | None = None,
    timeout_s: float | None = None,
    name: str | None = None,
) -> TaskFunction[P, R] | Callable[[Callable[P, R]], TaskFunction[P, R]]:
    """Declares a task: ``@shoal.task`` or ``@shoal.task(retries=3, memory_mb=1024, ...)``."""
    opts = TaskOptions(retries=retries, memory_mb=memory_mb, timeout_s=timeout_s, name=name)
    if func is not None:
        return TaskFunction(func, opts)

    def decorate(f: Callable[P, R]) -> TaskFunction[P, R]:
        return TaskFunction(f, opts)

    return decorate
