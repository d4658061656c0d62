"""Signed payloads: everything a worker would unpickle carries an HMAC bound to its place (with
``SHOAL_SECRET``, or a secret the process makes for its own workers); an unsigned, altered,
moved or foreign-signed payload is refused before it is decoded."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

import shoal
from conftest import assert_no_leaks
from reference import evaluate
from shoal import _core
from shoal.backends import LocalProcesses
from shoal.backends.base import Backend, Resources
from shoal.runtime.invocation import Invocation
from shoal.serialize import (
    dumps_leaf,
    dumps_value,
    loads_function,
    loads_value,
    seal_function,
    value_place,
)
from shoal.signing import seal, secret_for_workers, unseal


@shoal.task
def add(x: Any, y: Any) -> Any:
    return x + y


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_SECRET", "correct horse battery staple")


def test_seal_round_trip_and_every_kind_of_bad_input(
    secret: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    sealed = seal(b"payload", "here")
    assert sealed != b"payload" and unseal(sealed, "x", "here") == b"payload"
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(shoal.PayloadError, match="bad signature"):
        unseal(tampered, "a test payload", "here")
    with pytest.raises(shoal.PayloadError, match="bad signature"):
        unseal(sealed, "a test payload", "there")  # moved to another place
    with pytest.raises(shoal.PayloadError, match="not signed"):
        unseal(b"payload", "a test payload", "here")
    with pytest.raises(shoal.PayloadError, match="not signed"):
        unseal(sealed[:20], "a test payload", "here")  # truncated
    monkeypatch.setenv("SHOAL_SECRET", "another secret")
    with pytest.raises(shoal.PayloadError, match="bad signature"):
        unseal(sealed, "a test payload", "here")
    monkeypatch.delenv("SHOAL_SECRET")
    with pytest.raises(shoal.PayloadError, match="SHOAL_SECRET is not set here"):
        unseal(sealed, "a test payload", "here")


def test_without_a_secret_the_process_signs_with_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOAL_SECRET", raising=False)
    sealed = seal(b"payload", "here")
    assert sealed.startswith(b"SS2") and unseal(sealed, "x", "here") == b"payload"
    given = secret_for_workers()["SHOAL_SECRET"]
    assert len(given) >= 32 and given == secret_for_workers()["SHOAL_SECRET"]  # one per process
    monkeypatch.setenv("SHOAL_SECRET", given)  # what its workers see
    assert unseal(sealed, "x", "here") == b"payload"


def test_values_functions_and_invocations_are_sealed(
    secret: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Opaque:  # pickled, not msgpack: the case that matters
        def __init__(self, v: int) -> None:
            self.v = v

    where = value_place("run", 3)
    blob = dumps_value(Opaque(3), where)
    assert loads_value(blob, where).v == 3
    leaf = dumps_leaf(lambda: 1)
    fn_hash = _core.hash16(leaf)
    fn = seal_function(leaf, fn_hash)
    assert loads_function(fn, fn_hash)() == 1
    inv = Invocation("run", None, (1,), b"graph", None)
    encoded = inv.encode()
    assert Invocation.decode(encoded) == inv
    loads: list[tuple[bytes, Any]] = [
        (blob, lambda b: loads_value(b, where)),
        (fn, lambda b: loads_function(b, fn_hash)),
        (encoded, Invocation.decode),
    ]
    monkeypatch.setenv("SHOAL_SECRET", "an attacker's secret")
    for bad, load in loads:
        with pytest.raises(shoal.PayloadError, match="bad signature"):
            load(bad)


def test_a_signed_payload_moved_to_another_place_is_refused(secret: None) -> None:
    """Whoever can write to the server but lacks the secret can still move signed payloads
    around: each is bound to its run, task, key or content hash."""
    out = dumps_value(41, value_place("run-a", 3))
    for elsewhere in (value_place("run-a", 4), value_place("run-b", 3)):
        with pytest.raises(shoal.PayloadError, match="moved from another place"):
            loads_value(out, elsewhere)
    f1, f2 = dumps_leaf(lambda: 1), dumps_leaf(lambda: 2)
    h1, h2 = _core.hash16(f1), _core.hash16(f2)
    with pytest.raises(shoal.PayloadError, match="bad signature"):
        loads_function(seal_function(f2, h2), h1)  # another signed function under h1's key
    with pytest.raises(shoal.PayloadError, match="another content"):
        loads_function(seal_function(f2, h1), h1)  # signed for h1, but not h1's content


def test_a_plain_pickle_is_never_unpickled_when_a_secret_is_set(secret: None) -> None:
    import pickle

    class Boom:
        def __reduce__(self) -> tuple[Any, ...]:
            return (eval, ("1/0",))  # would raise ZeroDivisionError if unpickled

    blob = pickle.dumps(Boom())
    with pytest.raises(shoal.PayloadError, match="not signed"):
        loads_function(blob, _core.hash16(blob))


def test_signed_runs_on_every_scheduler(secret: None, redis_url: str) -> None:
    n = add(add(1, 2), add(3, 4))
    assert n.compute(scheduler="sync") == 10
    with shoal.Session(redis_url=redis_url, backend=LocalProcesses(2), progress=False) as s:
        xs = [add(i, i) for i in range(50)]
        assert s.compute(*xs, n) == evaluate(*xs, n)
    assert_no_leaks(redis_url)


class _Resigning:
    """A backend in the middle: re-signs every invocation with another secret (tampering)."""

    def __init__(self, inner: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
        self.inner, self.mp = inner, monkeypatch
        self.name, self.capabilities = inner.name, inner.capabilities

    async def invoke_many(self, items: Sequence[tuple[bytes, Resources | None]]) -> None:
        forged: list[tuple[bytes, Resources | None]] = []
        for data, res in items:
            inv = Invocation.decode(data)
            self.mp.setenv("SHOAL_SECRET", "forged")
            forged.append((inv.encode(), res))
            self.mp.setenv("SHOAL_SECRET", "correct horse battery staple")
        await self.inner.invoke_many(forged)

    async def invoke(self, data: bytes, res: Resources | None) -> None:
        await self.invoke_many([(data, res)])

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_tampered_invocation_fails_the_run_clearly(
    secret: None, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with shoal.Session(redis_url=redis_url, backend=LocalProcesses(1), progress=False) as s:
        assert s.compute(add(1, 2)) == (3,)  # the pool starts, with the right secret
        real = s.backend
        s.backend = _Resigning(real, monkeypatch)
        try:
            with pytest.raises(shoal.PayloadError, match="bad signature") as info:
                s.compute(add(5, 6), timeout=30)
            assert "correct horse" not in str(info.value)
        finally:
            s.backend = real
        assert s.compute(add(7, 8)) == (15,)  # the worker refused it and carried on
    assert_no_leaks(redis_url)


def test_a_payload_sealed_in_parts_is_the_payload_sealed_whole() -> None:
    from shoal.errors import PayloadError
    from shoal.signing import seal_parts, unseal_view

    parts = [b"\x02", b"body " * 1000, b"", b"tail"]
    where = value_place("run", 3)
    sealed = seal_parts(parts, where)
    assert sealed == seal(b"".join(parts), where)
    view = unseal_view(sealed, "a value", where)
    assert isinstance(view, memoryview) and bytes(view) == b"".join(parts)
    for i in (0, 5, 40, len(sealed) - 1):  # any byte changed: refused
        bad = bytearray(sealed)
        bad[i] ^= 1
        with pytest.raises(PayloadError):
            unseal_view(bytes(bad), "a value", where)
    with pytest.raises(PayloadError, match="bad signature"):
        unseal_view(sealed, "a value", value_place("run", 4))


def test_the_native_mac_reads_bytes_from_an_offset_and_refuses_other_inputs() -> None:
    key = _core.derive_mac_key(b"k")
    assert _core.mac(key, b"p", b"xxhello", start=2) == _core.mac(key, b"p", b"he", b"llo")
    with pytest.raises(ValueError, match="past the end"):
        _core.mac(key, b"p", b"abc", start=4)
    with pytest.raises(TypeError):
        _core.mac(key, b"p", bytearray(b"abc"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="32 bytes"):
        _core.mac(b"short", b"p", b"abc")
