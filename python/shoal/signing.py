"""Signed payloads: everything a worker would unpickle carries a MAC bound to where it belongs.

Sealed form: ``SS2`` + MAC (32 bytes) + payload, where the MAC is a keyed blake3 hash (key
derived from the secret) over the payload's place and the payload (``shoal._core.mac``:
several times faster than HMAC-SHA256 on large values, which every task pays twice).
Invocations, stored subDAGs, function blobs, constants and encoded values are sealed
by whoever writes them and checked by whoever reads them, *before* anything is decoded or
unpickled: a payload that is unsigned, truncated or altered raises
:class:`~shoal.errors.PayloadError`. The *context* names the payload's place (``invocation``,
``<run>:value:<task>``, ``<run>:subdag:<name>``, ``function:<hash>``, ``<run>:const:<hash>``;
see :func:`context`), so a validly signed payload moved to another key, run or task is refused
too: a task is never fed another task's value or run another signed function. Function blobs
and constants are also checked against the content hash they are stored under.

The secret is ``SHOAL_SECRET`` when set (the same on the client and every worker). Without it, a
process makes a random one at first use (:func:`secret_for_workers`), and the workers it starts
(LocalProcesses) inherit it in their environment: every session signs, and a local user who can
write to the server still cannot make a worker run code. Workers started elsewhere need
``SHOAL_SECRET`` set explicitly. The secret never appears in settings, events or messages.

No shoal format starts with ``SS2`` (invocations start with ``SHI``, graphs with their magic,
pickles with ``0x80``, values with an encoding byte), so sealed and plain payloads are never
confused.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
import threading
from collections.abc import Sequence

from . import _core
from .errors import PayloadError

_MAGIC = b"SS2"
_MAC_LEN = 32
_HEAD = len(_MAGIC) + _MAC_LEN
SECRET_VAR = "SHOAL_SECRET"

_made: bytes | None = None
_made_lock = threading.Lock()


def _secret() -> bytes:
    value = os.environ.get(SECRET_VAR)
    if value:
        return value.encode()
    global _made
    with _made_lock:
        if _made is None:
            _made = secrets.token_urlsafe(32).encode()
        return _made


def secret_for_workers() -> dict[str, str]:
    """The environment entry that gives workers started by this process its secret."""
    return {SECRET_VAR: _secret().decode()}


def key_id() -> str:
    """Names this secret without revealing it: shared keys signed with different secrets (two
    clients of one server) do not overwrite each other (:func:`shoal.storage.keys.function`)."""
    return _key_id(_secret())


@functools.lru_cache(maxsize=8)
def _key_id(secret: bytes) -> str:
    return hmac.new(secret, b"shoal key id", hashlib.sha256).hexdigest()[:16]


def context(run_id: str, kind: str, name: object) -> str:
    """Where a payload belongs: ``<run>:<kind>:<name>``."""
    return f"{run_id}:{kind}:{name}"


def const_place(run_id: str, const_hash: bytes) -> str:
    """Where a large argument constant of a run belongs."""
    return context(run_id, "const", const_hash.hex())


def _mac(secret: bytes, where: str, *payload: bytes, start: int = 0) -> bytes:
    return _core.mac(_mac_key(secret), where.encode(), *payload, start=start)


@functools.lru_cache(maxsize=8)
def _mac_key(secret: bytes) -> bytes:
    return _core.derive_mac_key(secret)


def seal(payload: bytes, where: str) -> bytes:
    """``payload`` signed for its place ``where`` (see :func:`context`)."""
    return _MAGIC + _mac(_secret(), where, payload) + payload


def seal_parts(parts: Sequence[bytes], where: str) -> bytes:
    """The concatenation of ``parts`` signed for ``where``, as :func:`seal` makes it, copied
    once (a large value is signed where it lies and joined with its header in one go)."""
    return b"".join([_MAGIC, _mac(_secret(), where, *parts), *parts])


def unseal(data: bytes, what: str, where: str) -> bytes:
    """The payload of ``data`` after checking its signature for the place ``where`` (``what``
    names it in errors)."""
    return bytes(unseal_view(data, what, where))


def unseal_view(data: bytes, what: str, where: str) -> memoryview:
    """:func:`unseal`, as a view of ``data`` (no copy of a large value)."""
    if data[: len(_MAGIC)] != _MAGIC or len(data) < _HEAD:
        raise PayloadError(f"{what} is not signed: refused")
    mac = data[len(_MAGIC) : _HEAD]
    if not hmac.compare_digest(mac, _mac(_secret(), where, data, start=_HEAD)):
        source = "" if os.environ.get(SECRET_VAR) else f" ({SECRET_VAR} is not set here)"
        raise PayloadError(
            f"{what} has a bad signature: altered, moved from another place, or signed with "
            f"another secret{source}: refused; client and workers must share {SECRET_VAR}"
        )
    return memoryview(data)[_HEAD:]


def unverified_payload(data: bytes) -> bytes:
    """The payload without checking it: only to read fields that are safe to parse (msgpack, no
    pickle) for reporting a refused payload, e.g. the run id of a tampered invocation."""
    return data[_HEAD:] if data[: len(_MAGIC)] == _MAGIC else data
