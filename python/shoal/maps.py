"""``shoal.map``: fan out over a list whose length is known only at run time.

``shoal.map(fn, xs, *args, **kwargs)`` is one lazy node. When ``xs`` (a task returning a list, or
another map) has produced N items, N element tasks ``fn(xs[i], *args, **kwargs)`` run, each on
its own; ``args`` and ``kwargs`` (which may hold nodes) go whole to every element. A task that
takes a map as an argument receives the list of element results, in order.

Maps of maps run element-wise: in ``shoal.map(g, shoal.map(f, xs))`` element i of ``g`` starts
as soon as element i of ``f`` is done, without waiting for the other elements. How workers count
and expand maps is described in ``rust/shoal-core/src/maps.rs`` and :mod:`shoal.runtime.elements`.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any, TypeVar, overload

from .errors import ShoalError, UsageError
from .task import Node, TaskFunction, TaskOptions

R = TypeVar("R")


class MapNode(Node[list[R]]):
    """A lazy ``shoal.map``: one task per item of its input, known only at run time."""

    __slots__ = ()
    _is_map = True

    @property
    def input(self) -> Node[Any]:
        """The node whose items are mapped."""
        node: Node[Any] = self._args[0]
        return node

    def __repr__(self) -> str:
        return f"<shoal.map {self._name} over <{self.input.name}>>"


def items(values: Any) -> list[Any]:
    """The source task of a map over a literal list: returns the list (its nodes resolved)."""
    return builtins.list(values)


_items_task: TaskFunction[Any, Any] = TaskFunction(items, TaskOptions(name="items"))


@overload
def map(  # a task function is a callable too: this overload comes first
    fn: TaskFunction[..., R], xs: Any, /, *args: Any, **kwargs: Any
) -> MapNode[R]: ...
@overload
def map(fn: Callable[..., R], xs: Any, /, *args: Any, **kwargs: Any) -> MapNode[R]: ...


def map(fn: Callable[..., Any], xs: Any, /, *args: Any, **kwargs: Any) -> MapNode[Any]:
    """One task ``fn(item, *args, **kwargs)`` per item of ``xs``, as a lazy node.

    ``fn`` is a ``@shoal.task`` function (its options apply to every element) or a plain
    function. ``xs`` is a node returning a list or tuple (any ordered iterable), another map
    (element-wise chain), or a literal list or tuple, which may hold nodes.
    """
    if isinstance(fn, TaskFunction):
        func, opts, name = fn.func, fn.opts, fn.name
    elif callable(fn) and not isinstance(fn, Node):
        func, opts = fn, TaskOptions()
        name = getattr(fn, "__name__", None) or type(fn).__name__
    else:
        raise UsageError(
            f"shoal.map needs a function to apply, got {type(fn).__name__}: {fn!r:.60}"
        )
    if isinstance(xs, list | tuple):
        xs = _items_task(builtins.list(xs))
    elif not isinstance(xs, Node):
        raise UsageError(
            f"shoal.map({name}, ...) maps over a node (a task returning a list), another "
            f"shoal.map, or a list or tuple; got {type(xs).__name__}: {xs!r:.60}"
        )
    if _holds(args, xs) or _holds(kwargs, xs):
        raise ShoalError(
            f"shoal.map({name}, ...): the mapped input <{xs.name}> is also passed whole as "
            "another argument; pass a separate node for the whole list"
        )
    return MapNode(func, name, opts, (xs, *args), dict(kwargs))


def _holds(value: Any, node: Node[Any]) -> bool:
    """Whether ``node`` appears in ``value`` (at any depth of list/tuple/dict/set values)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if v is node:
            return True
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list | tuple | set | frozenset):
            stack.extend(v)
    return False
