"""Value encoding and invocations: round trips and clear errors on bad input."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import shoal
from shoal.runtime.invocation import Invocation
from shoal.serialize import dumps_value, loads_value, value_place
from shoal.signing import seal, unseal

#: Where the values of these tests belong (see shoal.signing).
W = value_place("test", 1)

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
    back = loads_value(dumps_value(v, W), W)
    assert back == v
    assert type(back) is type(v)


def test_large_values_are_compressed() -> None:
    import msgpack

    v = ["the same words again"] * 10_000
    encoded = unseal(dumps_value(v, W), "a value", W)
    assert encoded[0] & 0x80  # the zstd flag
    assert len(encoded) < len(msgpack.packb(v)) / 20
    assert loads_value(seal(encoded, W), W) == v


def test_incompressible_large_values_are_not_compressed() -> None:
    """Random floats (8 MB) would shrink by ~6 %: not worth zstd's time, so they go as they
    are; a large value that compresses well, and one compressible only past its sampled
    slices' worth, are compressed."""
    import numpy as np

    noise = np.random.default_rng(7).random(1_000_000)
    encoded = unseal(dumps_value(noise, W), "a value", W)
    assert not encoded[0] & 0x80
    assert np.array_equal(loads_value(seal(encoded, W), W), noise)
    steps = np.arange(1_000_000)
    encoded = unseal(dumps_value(steps, W), "a value", W)
    assert encoded[0] & 0x80 and len(encoded) < steps.nbytes / 4
    assert np.array_equal(loads_value(seal(encoded, W), W), steps)


@given(st.binary(min_size=1024, max_size=200_000), st.integers(0, 3))
def test_any_large_body_round_trips_compressed_or_not(data: bytes, repeat: int) -> None:
    value = data * (repeat + 1)
    assert loads_value(dumps_value(value, W), W) == value


@pytest.mark.parametrize(
    "data", [b"", b"\x07abc", b"\x01\xc1", b"\x82garbage", b"\x02not a pickle"]
)
def test_bad_values_are_payload_errors(data: bytes) -> None:
    with pytest.raises(shoal.PayloadError, match="not signed"):
        loads_value(data, W)
    with pytest.raises(shoal.PayloadError, match="cannot decode value"):
        loads_value(seal(data, W), W)  # signed, and still not a value


@given(st.binary(max_size=200))
def test_random_bytes_never_escape_as_other_errors(data: bytes) -> None:
    with contextlib.suppress(shoal.PayloadError):
        loads_value(data, W)
    with contextlib.suppress(shoal.PayloadError):
        loads_value(seal(data, W), W)


def test_invocation_round_trip() -> None:
    inv = Invocation("run1", 3, (1, 2), b"graph", None, {7: b"\x01\x02"})
    assert Invocation.decode(inv.encode()) == inv
    made = Invocation("run1", None, (4,), b"graph", None, invoked_by=2, invoked_at=1.7e9)
    assert Invocation.decode(made.encode()) == made


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"invoked_by": -1}, "invoking task"),
        ({"invoked_by": True}, "invoking task"),
        ({"invoked_at": -3.0}, "invocation time"),
        ({"invoked_at": "now"}, "invocation time"),
    ],
)
def test_a_bad_invoker_is_named(fields: dict[str, object], says: str) -> None:
    bad = Invocation("run1", None, (4,), b"graph", None, **fields)  # type: ignore[arg-type]
    with pytest.raises(shoal.PayloadError, match=f"malformed invocation: bad {says}"):
        Invocation.decode(bad.encode())


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "bad magic"),
        (b"SHI\x09", "unsupported version 9"),
        (b"SHI\x01\xc1", "cannot decode"),
    ],
)
def test_bad_invocations(data: bytes, match: str) -> None:
    with pytest.raises(shoal.PayloadError, match="not signed"):
        Invocation.decode(data)
    with pytest.raises(shoal.PayloadError, match=match):
        Invocation.decode(seal(data, "invocation"))  # signed, and still not an invocation


def test_malformed_invocation_fields_are_named() -> None:
    bad = Invocation("", -1, (-5,), None, None, {})
    with pytest.raises(shoal.PayloadError, match="run id.*worker id.*start tasks.*subDAG"):
        Invocation.decode(bad.encode())
