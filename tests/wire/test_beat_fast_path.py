"""``beat_fields``, the heartbeat fast path's parser, accepts exactly the beats that
``parse_message`` turns into a ``Beat`` (and agrees with it), and nothing else."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_messages import BAD_NAME_CHARS, FIELD_CASES, MISSING, REQ_ID, packed

from meshreg.wire.messages import Beat, RequestRejected, beat_fields, parse_message


def decoded(body: bytes) -> Any:
    return msgpack.unpackb(body, raw=False, strict_map_key=False)


def agrees(msg: Any) -> None:
    """beat_fields(msg) is the Beat parse_message makes of msg, or None when it makes none."""
    fast = beat_fields(msg)
    try:
        req = parse_message(msg)
    except RequestRejected:
        assert fast is None, msg
        return
    if type(req) is not Beat:
        assert fast is None, msg
        return
    assert fast == (req.req_id, tuple(req.key), tuple(req.instance)), msg


def test_a_plain_beat_gives_plain_tuples() -> None:
    fast = beat_fields(decoded(packed("beat")))
    assert fast == (REQ_ID, ("public", "DEFAULT_GROUP", "orders"), ("10.0.0.1", 8080, "DEFAULT"))
    assert all(type(part) is tuple for part in fast[1:])  # type: ignore[index]


@pytest.mark.parametrize("case", [c for c in FIELD_CASES if c[0] == "beat"])
def test_every_rejected_beat_is_refused(case: tuple[str, str, Any, Any]) -> None:
    _, field, value, _ = case
    msg = decoded(packed("beat", **{field: value}))
    assert beat_fields(msg) is None
    agrees(msg)


@pytest.mark.parametrize(
    "changes",
    [
        {"namespace": None, "group": None, "cluster": None},
        {"namespace": MISSING, "group": MISSING, "cluster": MISSING},
        {"v": 2},
        {"v": True},
        {"id": -1},
        {"id": 2**64},
        {"id": 1.0},
        {"op": "register", "weight": 1.0},
        {"port": True},
        {"port": 0},
        {"port": 65536},
        *({"service": name, "ip": name} for name in BAD_NAME_CHARS),
    ],
)
def test_variants_agree_with_the_full_parser(changes: dict[str, Any]) -> None:
    msg = decoded(packed("beat"))
    for field, value in changes.items():
        if value is MISSING:
            msg.pop(field, None)
        else:
            msg[field] = value
    agrees(msg)


def test_other_shapes_are_not_beats() -> None:
    for msg in (
        None,
        [],
        "beat",
        7,
        {"op": "beat"},
        {b"op": b"beat"},
        {"op": "ping", "v": 1, "id": 1},
    ):
        assert beat_fields(msg) is None
        agrees(msg)


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.sampled_from(["", "orders", "public", "DEFAULT", "10.0.0.1", "x" * 200, "beat"]),
    st.binary(max_size=4),
)
_fields = st.sampled_from(
    ["v", "id", "op", "namespace", "group", "service", "ip", "port", "cluster"]
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_fields, _values, max_size=9))
def test_random_changes_to_a_beat_agree(changes: dict[str, Any]) -> None:
    msg = {"v": 1, "id": REQ_ID, "op": "beat", "service": "orders", "ip": "10.0.0.1", "port": 80}
    msg.update(changes)
    agrees(msg)
