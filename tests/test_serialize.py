"""Value encoding and invocations: round trips and clear errors on bad input."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import shoal
from shoal.runtime.invocation import Invocation
from shoal.serialize import dumps_value, loads_value

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(),
    lambda c: (
        st.lists(c)
        | st.tuples(c, c)
        | st.dictionaries(st.text() | st.integers(), c)
        | st.frozensets(st.integers())
    ),
    max_leaves=30,
)


@given(values)
def test_values_round_trip_exactly(v: Any) -> None:
    back = loads_value(dumps_value(v))
    assert back == v
    assert type(back) is type(v)


def test_large_values_are_compressed() -> None:
    import msgpack

    v = ["the same words again"] * 10_000
    encoded = dumps_value(v)
    assert encoded[0] & 0x80  # the zstd flag
    assert len(encoded) < len(msgpack.packb(v)) / 20
    assert loads_value(encoded) == v


@pytest.mark.parametrize(
    "data", [b"", b"\x07abc", b"\x01\xc1", b"\x82garbage", b"\x02not a pickle"]
)
def test_bad_values_are_payload_errors(data: bytes) -> None:
    with pytest.raises(shoal.PayloadError):
        loads_value(data)


@given(st.binary(max_size=200))
def test_random_bytes_never_escape_as_other_errors(data: bytes) -> None:
    with contextlib.suppress(shoal.PayloadError):
        loads_value(data)


def test_invocation_round_trip() -> None:
    inv = Invocation("run1", 3, (1, 2), b"graph", None, {7: b"\x01\x02"})
    assert Invocation.decode(inv.encode()) == inv


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "bad magic"),
        (b"SHI\x09", "unsupported version 9"),
        (b"SHI\x01\xc1", "cannot decode"),
    ],
)
def test_bad_invocations(data: bytes, match: str) -> None:
    with pytest.raises(shoal.PayloadError, match=match):
        Invocation.decode(data)


def test_malformed_invocation_fields_are_named() -> None:
    bad = Invocation("", -1, (-5,), None, None, {})
    with pytest.raises(shoal.PayloadError, match="run id.*worker id.*start tasks.*subDAG"):
        Invocation.decode(bad.encode())
