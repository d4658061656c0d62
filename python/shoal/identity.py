"""What history is keyed by: a function's identity and a workflow's.

A **function identity** is its qualified name (``module:qualname``) and a hash of its code: the
bytecode, names and constants of its code object and of every code object nested in it (inner
functions, lambdas, comprehensions), not its captured values. So two different functions that
are both named ``f`` stay apart, an edited function starts a new history, and a function made
by a factory (``make_scaler(2)``, ``make_scaler(3)``) keeps one: its code is the same, whatever
it captured. A callable without code of its own (a builtin, a class, a ``functools.partial``)
is known by its name and that of what it wraps.

A **workflow identity** is a hash of the set of function identities and of the graph's shape
without its size (``Graph.shape``: each distinct pair of a task's function and its inputs'
functions). A 64-leaf and a 1,024-leaf tree reduction thus share one identity, and a tree and a
fan-out of the same functions do not.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import _core

#: How deep nested code objects are followed (a guard against pathological nesting).
_MAX_DEPTH = 32


@dataclass(frozen=True, slots=True)
class FunctionId:
    #: ``module:qualname``, as events name the function.
    name: str
    #: Hex of the 16-byte hash of its code (see the module docstring).
    code: str

    def __str__(self) -> str:
        return f"{self.name}@{self.code[:12]}"


def function_id(fn: Callable[..., Any]) -> FunctionId:
    """The identity of ``fn`` (see the module docstring)."""
    inner: Any = fn
    while isinstance(inner, functools.partial):
        inner = inner.func
    inner = getattr(inner, "__wrapped__", inner)  # functools.wraps: the wrapped function
    module = getattr(inner, "__module__", None) or type(inner).__module__
    qualname = getattr(inner, "__qualname__", None) or type(inner).__qualname__
    code = getattr(inner, "__code__", None)
    if not isinstance(code, types.CodeType):  # a builtin, a class, a callable object
        code = getattr(vars(type(inner)).get("__call__"), "__code__", None)
    body = _code_bytes(code, 0) if isinstance(code, types.CodeType) else b"no code"
    return FunctionId(f"{module}:{qualname}", _core.hash16(body).hex())


def _code_bytes(code: types.CodeType, depth: int) -> bytes:
    if depth > _MAX_DEPTH:
        return b"..."
    parts = [
        code.co_code,
        repr((code.co_argcount, code.co_kwonlyargcount, code.co_flags)).encode(),
        repr(code.co_names).encode(),
        repr(code.co_varnames).encode(),
    ]
    parts += [_const_bytes(c, depth) for c in code.co_consts]
    return b"\x00".join(parts)


def _const_bytes(const: object, depth: int) -> bytes:
    """A constant of a code object, the same in every process (a frozenset's repr follows
    string hashing, which differs from process to process)."""
    if isinstance(const, types.CodeType):
        return b"<code " + _code_bytes(const, depth + 1) + b">"
    if isinstance(const, frozenset):
        return b"{" + b",".join(sorted(_const_bytes(c, depth) for c in const)) + b"}"
    if isinstance(const, tuple):
        return b"(" + b",".join(_const_bytes(c, depth) for c in const) + b")"
    return repr(const).encode()


def function_ids(live: dict[bytes, Callable[..., Any]]) -> dict[bytes, FunctionId]:
    """The identity of each function of a frozen graph, by its blob's content hash."""
    return {h: function_id(fn) for h, fn in live.items()}


def workflow_id(graph: _core.Graph, ids: dict[bytes, FunctionId]) -> str:
    """The hex of the 16-byte identity of ``graph``'s workflow (see the module docstring)."""

    def named(h: bytes | None) -> str:
        if h is None:
            return "<outside>"
        found = ids.get(h)
        return f"{found.name}@{found.code}" if found is not None else h.hex()

    shape = graph.shape()
    kinds = sorted({(named(k.fn_hash), tuple(sorted(map(named, k.input_fns)))) for k in shape})
    functions = sorted({named(k.fn_hash) for k in shape})
    return _core.hash16(repr((functions, kinds)).encode()).hex()
