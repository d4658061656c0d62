"""Values on the wire: task outputs, inline inputs and function blobs.

An encoded value is one header byte and a body. The body is msgpack when the value is made only
of types msgpack carries without loss (checked with ``strict_types``, so tuples, subclasses and
big ints fall through), otherwise cloudpickle. Bodies over 1 KiB are zstd-compressed when that
saves space (a large body only when a sample of it shrinks by a tenth: incompressible data, like
an array of random floats, is not worth zstd's time). Anything else in the header byte is a
:class:`~shoal.errors.PayloadError`.

Every encoded value and function blob is sealed for its place (:mod:`.signing`): ``where`` names
it (:func:`value_place`), and a value read from anywhere else is refused.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import site
import sys
import sysconfig
import threading
import types
from collections import ChainMap
from typing import Any

import cloudpickle
import msgpack
import zstandard

from . import _core
from .errors import PayloadError
from .signing import context, seal, seal_parts, unseal, unseal_view

_MSGPACK = 0x01
_PICKLE = 0x02
_ZSTD = 0x80
_COMPRESS_FROM = 1024
#: A large body is compressed only if a sample of it shrinks by this much.
_MIN_SAVING = 0.1
#: Bytes per slice of that sample.
_SAMPLE = 16 * 1024
_compressor = zstandard.ZstdCompressor(level=3)
#: The header byte of each encoding, made once.
_HEADS = {k: bytes([k]) for k in (_MSGPACK, _PICKLE, _MSGPACK | _ZSTD, _PICKLE | _ZSTD)}
_decompressor = zstandard.ZstdDecompressor()


def value_place(run_id: str, task: int) -> str:
    """Where the output of ``task`` (or an item, an element) of a run belongs."""
    return context(run_id, "value", task)


def error_place(run_id: str, task: int) -> str:
    """Where the exception a task raised belongs (in its TASK_FAILED event)."""
    return context(run_id, "error", task)


def function_place(fn_hash: bytes) -> str:
    """Where a function blob belongs: its content hash (function blobs are shared by runs)."""
    return f"function:{fn_hash.hex()}"


def dumps_value(value: Any, where: str) -> bytes:
    """Encodes one task output (or inline input), sealed for its place ``where``."""
    try:
        body: bytes = msgpack.packb(value, use_bin_type=True, strict_types=True)
        kind = _MSGPACK
    except (TypeError, ValueError, OverflowError):
        body = _pickle(value)
        kind = _PICKLE
    if len(body) >= _COMPRESS_FROM and _worth_compressing(body):
        packed = _compressor.compress(body)
        if len(packed) < len(body):
            return seal_parts([_HEADS[kind | _ZSTD], packed], where)
    return seal_parts([_HEADS[kind], body], where)  # the body is copied once, here


def _worth_compressing(body: bytes) -> bool:
    """Whether zstd would save at least :data:`_MIN_SAVING` of a large body, judged on three
    slices of it (start, middle, end): an array of random floats saves ~6 % for ~14 ms per
    8 MB, more than moving the difference costs. Small bodies are simply compressed."""
    if len(body) <= 4 * _SAMPLE:
        return True
    middle = len(body) // 2
    sample = body[:_SAMPLE] + body[middle : middle + _SAMPLE] + body[-_SAMPLE:]
    return len(_compressor.compress(sample)) <= (1 - _MIN_SAVING) * len(sample)


def loads_value(data: bytes, where: str) -> Any:
    """Decodes what :func:`dumps_value` made for the place ``where``; anything else raises
    ``PayloadError``."""
    view = unseal_view(data, "a value", where)  # no copy: every reader takes a buffer
    if not view:
        raise PayloadError("cannot decode value: empty payload")
    head = view[0]
    kind = head & ~_ZSTD
    body: bytes | memoryview = view[1:]
    try:
        if head & _ZSTD:
            body = _decompressor.decompress(body)
        if kind == _MSGPACK:
            return msgpack.unpackb(body, raw=False, strict_map_key=False)
        if kind == _PICKLE:
            return pickle.loads(body)
    except (PayloadError, ModuleNotFoundError):
        raise  # a module this process lacks is the caller's to explain, not a bad payload
    except Exception as e:
        raise PayloadError(f"cannot decode value: {type(e).__name__}: {e}") from e
    raise PayloadError(f"cannot decode value: unknown encoding byte {head:#04x}")


def dumps_leaf(obj: Any) -> bytes:
    """Pickles an argument leaf or a function (cloudpickle: closures and lambdas work)."""
    return _pickle(obj)


def _pickle(obj: Any) -> bytes:
    _register_user_modules()
    try:
        return _dump(obj)
    except Exception:
        if not _registered:
            raise
    # Something of the user's modules cannot travel by value (a lock, a connection at module
    # level): by reference, as plain cloudpickle would, for workers that can import it.
    with _by_reference:
        modules = [m for name in sorted(_registered) if (m := sys.modules.get(name))]
        for module in modules:
            with contextlib.suppress(ValueError):
                cloudpickle.unregister_pickle_by_value(module)
        try:
            return _dump(obj)
        finally:
            for module in modules:
                cloudpickle.register_pickle_by_value(module)


def _dump(obj: Any) -> bytes:
    buf = io.BytesIO()
    _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buf.getvalue()


# cloudpickle's own reducer for code objects (private, but stable across its 3.x releases); if
# a release renames it, code keeps cloudpickle's ``<dynamic-code>`` and nothing else changes.
_cloud_code_reduce: Any = getattr(cloudpickle.cloudpickle, "_code_reduce", None)


class _CloudCode:
    """A code object pickled the way cloudpickle does (its file name replaced)."""

    __slots__ = ("code",)

    def __init__(self, code: types.CodeType) -> None:
        self.code = code

    def __reduce__(self) -> Any:
        return _cloud_code_reduce(self.code)


def _reduce_code(code: types.CodeType) -> Any:
    return (_named_code, (_CloudCode(code), code.co_filename))


def _named_code(code: types.CodeType, filename: str) -> types.CodeType:
    return code.replace(co_filename=filename)


class _Pickler(cloudpickle.Pickler):
    """cloudpickle, keeping the file name of code it pickles by value.

    cloudpickle writes ``<dynamic-code>`` as the file of every code object it pickles by value
    (a task, a helper, a lambda); here each keeps its real one, so remote tracebacks show the
    user's file and line, and a debugger can list the source."""

    dispatch_table = ChainMap(
        {types.CodeType: _reduce_code} if _cloud_code_reduce is not None else {},
        cloudpickle.Pickler.dispatch_table,
    )


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
#: How many modules were loaded when the user's modules were last registered.
_modules_seen = 0
#: The modules registered to travel by value, by name.
_registered: set[str] = set()
_by_reference = threading.Lock()


def _register_user_modules() -> None:
    """Makes every module of the user's own files travel by value: loaded from a ``.py`` file
    outside the standard library and the installed packages (and not shoal). A task then reaches
    its helpers, classes and constants on workers that cannot import the user's files: another
    working directory, another machine. Checked again only when new modules were loaded."""
    global _modules_seen
    if len(sys.modules) == _modules_seen:
        return
    _modules_seen = len(sys.modules)
    for name, module in list(sys.modules.items()):
        if "." in name or name in ("__main__", "shoal") or not isinstance(module, types.ModuleType):
            continue  # a package's modules follow it; __main__ is pickled by value anyway
        path = getattr(module, "__file__", None)
        if not isinstance(path, str) or not path.endswith(".py"):
            continue  # built in, native code, a namespace package
        if name not in _registered and not os.path.realpath(path).startswith(_INSTALLED):
            cloudpickle.register_pickle_by_value(module)
            _registered.add(name)


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
    except ModuleNotFoundError:
        raise  # the function needs a module this process lacks: the caller names the task
    except Exception as e:
        raise PayloadError(f"cannot load a task function: {type(e).__name__}: {e}") from e
