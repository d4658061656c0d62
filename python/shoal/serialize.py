"""Values on the wire: task outputs, inline inputs and function blobs.

An encoded value is one header byte and a body. The body is msgpack when the value is made only
of types msgpack carries without loss (checked with ``strict_types``, so tuples, subclasses and
big ints fall through), otherwise cloudpickle. Bodies over 1 KiB are zstd-compressed when that
saves space. Anything else in the header byte is a :class:`~shoal.errors.PayloadError`.

Every encoded value and function blob is sealed for its place (:mod:`.signing`): ``where`` names
it (:func:`value_place`), and a value read from anywhere else is refused.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import site
import sys
import sysconfig
import types
from typing import Any

import cloudpickle
import msgpack
import zstandard

from . import _core
from .errors import PayloadError
from .signing import context, seal, unseal

_MSGPACK = 0x01
_PICKLE = 0x02
_ZSTD = 0x80
_COMPRESS_FROM = 1024
_compressor = zstandard.ZstdCompressor(level=3)
_decompressor = zstandard.ZstdDecompressor()


def value_place(run_id: str, task: int) -> str:
    """Where the output of ``task`` (or an item, an element) of a run belongs."""
    return context(run_id, "value", task)


def function_place(fn_hash: bytes) -> str:
    """Where a function blob belongs: its content hash (function blobs are shared by runs)."""
    return f"function:{fn_hash.hex()}"


def dumps_value(value: Any, where: str) -> bytes:
    """Encodes one task output (or inline input), sealed for its place ``where``."""
    try:
        body: bytes = msgpack.packb(value, use_bin_type=True, strict_types=True)
        kind = _MSGPACK
    except (TypeError, ValueError, OverflowError):
        body = cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        kind = _PICKLE
    if len(body) >= _COMPRESS_FROM:
        packed = _compressor.compress(body)
        if len(packed) < len(body):
            return seal(bytes([kind | _ZSTD]) + packed, where)
    return seal(bytes([kind]) + body, where)


def loads_value(data: bytes, where: str) -> Any:
    """Decodes what :func:`dumps_value` made for the place ``where``; anything else raises
    ``PayloadError``."""
    data = unseal(data, "a value", where)
    if not data:
        raise PayloadError("cannot decode value: empty payload")
    head = data[0]
    kind = head & ~_ZSTD
    body: bytes = memoryview(data)[1:].tobytes()
    try:
        if head & _ZSTD:
            body = _decompressor.decompress(body)
        if kind == _MSGPACK:
            return msgpack.unpackb(body, raw=False, strict_map_key=False)
        if kind == _PICKLE:
            return pickle.loads(body)
    except PayloadError:
        raise
    except Exception as e:
        raise PayloadError(f"cannot decode value: {type(e).__name__}: {e}") from e
    raise PayloadError(f"cannot decode value: unknown encoding byte {head:#04x}")


def dumps_leaf(obj: Any) -> bytes:
    """Pickles an argument leaf or a function (cloudpickle: closures and lambdas work).

    cloudpickle replaces a by-value function's file name with ``<dynamic-code>``; a function
    travels with its real one, so remote tracebacks point at the user's file and line."""
    if isinstance(obj, types.FunctionType):
        _by_value_if_users(obj)
        obj = _WithFilename(obj, obj.__code__.co_filename)
    blob: bytes = cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return blob


def _installed_roots() -> tuple[str, ...]:
    paths = {
        p
        for name in ("stdlib", "platstdlib", "purelib", "platlib")
        if (p := sysconfig.get_paths().get(name))
    }
    with contextlib.suppress(Exception):
        paths.update(site.getsitepackages())
        paths.add(site.getusersitepackages())
    return tuple(os.path.realpath(p) + os.sep for p in paths)


_INSTALLED = _installed_roots()


def _by_value_if_users(func: types.FunctionType) -> None:
    """Makes the module tree of a function defined in the user's own files (not the standard
    library, not an installed package) travel by value: its helpers and classes then reach
    workers that cannot import the user's files."""
    top = (func.__module__ or "").partition(".")[0]
    module = sys.modules.get(top)
    path = getattr(module, "__file__", None)
    if module is None or path is None or top in ("__main__", "shoal"):
        return  # __main__ is pickled by value anyway
    if not os.path.realpath(path).startswith(_INSTALLED):
        cloudpickle.register_pickle_by_value(module)


class _WithFilename:
    def __init__(self, func: types.FunctionType, filename: str) -> None:
        self.func = func
        self.filename = filename

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore_filename, (self.func, self.filename))


def _restore_filename(func: Any, filename: str) -> Any:
    code = getattr(func, "__code__", None)
    if code is not None and code.co_filename != filename:
        func.__code__ = code.replace(co_filename=filename)
    return func


def loads_leaf(blob: bytes) -> Any:
    return pickle.loads(blob)


def seal_function(blob: bytes, fn_hash: bytes) -> bytes:
    return seal(blob, function_place(fn_hash))


def loads_function(blob: bytes, fn_hash: bytes) -> Any:
    """The function stored under ``fn_hash``: signed for that hash, and its content hash."""
    blob = unseal(blob, "a function blob", function_place(fn_hash))
    if _core.hash16(blob) != fn_hash:
        raise PayloadError(f"the function blob stored under {fn_hash.hex()} has another content")
    try:
        return pickle.loads(blob)
    except Exception as e:
        raise PayloadError(f"cannot load a task function: {type(e).__name__}: {e}") from e
