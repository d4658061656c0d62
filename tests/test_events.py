"""The event schema: every record round-trips through the stream's flat fields, bad entries get
clear errors, and the README documents every event and field."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal import events
from shoal.errors import PayloadError

_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)
_ints = st.integers(-(2**40), 2**40)
_floats = st.floats(allow_nan=False, allow_infinity=False, width=64)
_by_annotation: dict[str, st.SearchStrategy[Any]] = {
    "int": _ints,
    "float": _floats,
    "str": _text,
    "bool": st.booleans(),
    # Commas separate items on the stream: an item cannot hold one.
    "tuple[str, ...]": st.lists(
        st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters=","), min_size=1),
        max_size=3,
    ).map(tuple),
    "tuple[int, ...]": st.lists(_ints, max_size=4).map(tuple),
}


def _strategy(annotation: str) -> st.SearchStrategy[Any]:
    base = annotation.removesuffix(" | None")
    inner = _by_annotation[base]
    return st.one_of(st.none(), inner) if base != annotation else inner


def records() -> st.SearchStrategy[events.Event]:
    def of(cls: type[events.Event]) -> st.SearchStrategy[events.Event]:
        hints = {
            k: v
            for c in reversed(cls.__mro__)
            for k, v in vars(c).get("__annotations__", {}).items()
        }
        fields = {
            f.name: _strategy(str(hints[f.name]))
            for f in dataclasses.fields(cls)
            if f.name not in ("id", "at")
        }
        return st.builds(cls, **fields)

    return st.one_of([of(cls) for cls in events.RECORDS.values()])


@given(records(), st.integers(0, 2**45), st.integers(0, 99))
def test_every_record_round_trips_through_the_stream_fields(
    record: events.Event, ms: int, seq: int
) -> None:
    fields = events.encode(record)
    assert fields["type"] == record.type
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items())
    back = events.decode(fields, f"{ms}-{seq}")
    assert back == record
    assert back.id == f"{ms}-{seq}" and back.at == ms / 1000


def test_defaults_are_left_out_of_the_stream() -> None:
    fields = events.encode(events.TaskCompleted(task=4, name="f", worker="h:1:a"))
    assert fields == {"type": "TASK_COMPLETED", "task": "4", "name": "f", "worker": "h:1:a"}


def test_an_unknown_type_is_kept_not_refused() -> None:
    got = events.decode({"type": "TASK_TELEPORTED", "task": "3"}, "5-0")
    assert isinstance(got, events.UnknownEvent)
    assert (got.name, dict(got.fields), got.at) == ("TASK_TELEPORTED", {"task": "3"}, 0.005)
    assert events.encode(got) == {"type": "TASK_TELEPORTED", "task": "3"}


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"type": "TASK_COMPLETED"}, "TASK_COMPLETED 1-0 lacks field 'task'"),
        ({"type": "TASK_STARTED", "task": "1", "name": "f", "time": "1.0"}, "lacks field 'worker'"),
        ({"type": "TASK_COMPLETED", "task": "one"}, "field 'task' = 'one' is not valid"),
        ({"type": "TASK_COMPLETED", "task": "1", "start": "soon"}, "field 'start' = 'soon'"),
        ({"type": "TASK_COMPLETED", "task": "1", "stored_at": "later"}, "field 'stored_at'"),
        ({"type": "WORKER_LOST", "lease": "t1", "recovery_start": "1,x"}, "'recovery_start'"),
    ],
)
def test_a_malformed_entry_is_a_payload_error_naming_the_field(
    fields: dict[str, str], says: str
) -> None:
    with pytest.raises(PayloadError, match=re.escape(says)):
        events.decode(fields, "1-0")


def _readme_schema() -> Mapping[str, set[str]]:
    """Event types and their field names from the README's schema section."""
    path = os.path.join(os.path.dirname(__file__), "..", "README.md")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    section = text.split("### The event schema", 1)[1].split("\n## ", 1)[0]
    found: dict[str, set[str]] = {}
    for line in section.splitlines():
        m = re.match(r"\| `([A-Z_]+)` \| (.*) \|", line)
        if m:
            found[m.group(1)] = set(re.findall(r"`(\w+)`", m.group(2)))
    return found


def test_the_readme_documents_every_event_and_field() -> None:
    documented = _readme_schema()
    schema = events.schema()
    assert list(documented) == list(schema), "README lists other events (or in another order)"
    for kind, fields in schema.items():
        assert documented[kind] == {name for name, _ in fields}, kind
