"""An independent sequential evaluator of lazy nodes: the oracle every runtime test compares with.

It shares nothing with shoal's freezing or runtime: it walks ``Node`` objects directly (iteratively,
so deep chains work), substitutes computed values into arguments and calls the functions. A map
node (``shoal.map``) is a plain list comprehension over its first argument's value.
"""

from __future__ import annotations

from typing import Any

from shoal.task import Node


def _substitute(obj: Any, values: dict[int, Any]) -> Any:
    if isinstance(obj, Node):
        return values[id(obj)]
    t = type(obj)
    if t is list:
        return [_substitute(x, values) for x in obj]
    if t is tuple:
        return tuple(_substitute(x, values) for x in obj)
    if t is set:
        return {_substitute(x, values) for x in obj}
    if t is frozenset:
        return frozenset(_substitute(x, values) for x in obj)
    if t is dict:
        return {_substitute(k, values): _substitute(v, values) for k, v in obj.items()}
    return obj


def _children(obj: Any, out: list[Node[Any]]) -> None:
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, Node):
            out.append(o)
        elif type(o) in (list, tuple, set, frozenset):
            stack.extend(o)
        elif type(o) is dict:
            stack.extend(o.keys())
            stack.extend(o.values())


def evaluate(*nodes: Node[Any]) -> tuple[Any, ...]:
    values: dict[int, Any] = {}
    for root in nodes:
        stack: list[tuple[Node[Any], bool]] = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if id(node) in values:
                continue
            if expanded:
                args = _substitute(node._args, values)
                kwargs = _substitute(node._kwargs, values)
                if getattr(node, "_is_map", False):  # shoal.map: one call per item of args[0]
                    values[id(node)] = [node._func(x, *args[1:], **kwargs) for x in args[0]]
                else:
                    values[id(node)] = node._func(*args, **kwargs)
                continue
            stack.append((node, True))
            kids: list[Node[Any]] = []
            _children((node._args, node._kwargs), kids)
            stack.extend((k, False) for k in kids if id(k) not in values)
    return tuple(values[id(n)] for n in nodes)
