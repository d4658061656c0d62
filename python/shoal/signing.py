"""Signed payloads: with ``SHOAL_SECRET`` set, everything a worker would unpickle carries an HMAC.

Sealed form: ``SS1`` + HMAC-SHA256(secret, payload) (32 bytes) + payload. Invocations, stored
subDAGs, function blobs, constants and encoded values are sealed by whoever writes them and
checked by whoever reads them, *before* anything is decoded or unpickled: a payload that is
unsigned, truncated or altered raises :class:`~shoal.errors.PayloadError`. No shoal format starts
with ``SS1`` (invocations start with ``SHI``, graphs with their magic, pickles with ``0x80``,
values with an encoding byte), so sealed and plain payloads cannot be confused.

The secret is read from the environment when used; it never appears in settings, events or
messages. Without a secret nothing is sealed, and a sealed payload is refused (the client and
the workers disagree about the secret: a configuration error worth hearing about).
"""

from __future__ import annotations

import hashlib
import hmac
import os

from .errors import PayloadError

_MAGIC = b"SS1"
_MAC_LEN = 32
SECRET_VAR = "SHOAL_SECRET"


def _secret() -> bytes | None:
    value = os.environ.get(SECRET_VAR)
    return value.encode() if value else None


def signing_enabled() -> bool:
    return _secret() is not None


def seal(payload: bytes) -> bytes:
    key = _secret()
    if key is None:
        return payload
    return _MAGIC + hmac.new(key, payload, hashlib.sha256).digest() + payload


def unseal(data: bytes, what: str) -> bytes:
    """The payload of ``data`` after checking its signature (``what`` names it in errors)."""
    key = _secret()
    sealed = data[:3] == _MAGIC
    if key is None:
        if sealed:
            raise PayloadError(
                f"{what} is signed but {SECRET_VAR} is not set here: client and workers must "
                "share the same secret"
            )
        return data
    if not sealed or len(data) < 3 + _MAC_LEN:
        raise PayloadError(f"{what} is not signed, and {SECRET_VAR} is set: refused")
    mac, payload = data[3 : 3 + _MAC_LEN], data[3 + _MAC_LEN :]
    if not hmac.compare_digest(mac, hmac.new(key, payload, hashlib.sha256).digest()):
        raise PayloadError(f"{what} has a bad signature (tampered, or another secret): refused")
    return payload


def unverified_payload(data: bytes) -> bytes:
    """The payload without checking it: only to read fields that are safe to parse (msgpack, no
    pickle) for reporting a refused payload, e.g. the run id of a tampered invocation."""
    return data[3 + _MAC_LEN :] if data[:3] == _MAGIC else data
