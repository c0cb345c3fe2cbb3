"""Reply results a client consumes: whatever a node sends, the checks either accept it
(and then the client can use it without a TypeError) or raise RemoteProtocolError."""

from __future__ import annotations

from typing import Any

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from meshreg.client.cache import ServiceView
from meshreg.client.messages import decode_result
from meshreg.errors import RemoteProtocolError
from meshreg.model import Instance, ServiceKey
from meshreg.wire.results import CHECKS, check_notification, check_result, split_address

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.binary(max_size=4),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
plausible = st.fixed_dictionaries(
    {"ip": st.text(min_size=1, max_size=8), "port": st.integers(1, 65535)},
    optional={
        "cluster": st.text(min_size=1, max_size=4),
        "weight": st.floats(0, 10),
        "healthy": st.booleans(),
        "metadata": st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
    },
)
arbitrary = st.fixed_dictionaries(
    {"ip": values, "port": values},
    optional={
        "cluster": values,
        "weight": values,
        "enabled": values,
        "healthy": values,
        "metadata": values,
    },
)
instance = st.one_of(plausible, arbitrary)
member = st.fixed_dictionaries(
    {
        "id": st.one_of(st.text(max_size=4), values),
        "address": st.one_of(st.just("127.0.0.1:7800"), st.just("::1:7800"), values),
        "state": st.one_of(st.sampled_from(["up", "down"]), values),
        "self": values,
        "services": values,
        "instances": values,
        "lag": values,
    }
)
results = st.one_of(
    values,
    st.fixed_dictionaries(
        {"revision": values, "epoch": values, "instances": st.lists(instance, max_size=3)}
    ),
    st.fixed_dictionaries(
        {"node": values, "ready": values, "members": st.lists(member, max_size=3)}
    ),
    st.fixed_dictionaries(
        {"results": st.lists(st.one_of(st.none(), st.tuples(values, values).map(list), values))}
    ),
)


def use(op: str, result: Any) -> None:
    """What the client does with an accepted result."""
    if op == "instances":
        ServiceView(ServiceKey("public", "g", "s")).apply_snapshot(result)
        [Instance.from_wire(d).address for d in result["instances"]]
    elif op == "cluster":
        members = [m for m in result["members"] if m["state"] == "up"]
        sorted({m["id"] for m in members})
        [split_address(m["address"]) for m in result["members"]]
    elif op == "services":
        [s["service"] for s in result["services"]]
    elif op == "register_batch":
        outcome = decode_result(op, result)
        [(e.code + 1, e.message.upper()) for e in outcome.results if e is not None]
    else:
        dict(result)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(CHECKS)), results)
def test_a_result_is_usable_or_rejected_with_a_protocol_error(op: str, result: Any) -> None:
    try:
        checked = check_result(op, result)
    except RemoteProtocolError:
        return
    use(op, checked)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(instance, max_size=3),
    st.lists(
        st.one_of(
            st.tuples(st.text(max_size=3), st.integers(1, 9), st.text(max_size=3)).map(list), values
        ),
        max_size=3,
    ),
)
def test_a_delta_is_usable_or_rejected(upsert: list[Any], remove: list[Any]) -> None:
    msg = {
        "kind": "delta",
        "epoch": 1,
        "revision": 2,
        "base": 1,
        "namespace": "public",
        "group": "g",
        "service": "s",
        "upsert": upsert,
        "remove": remove,
    }
    try:
        check_notification(msg)
    except RemoteProtocolError:
        return
    view = ServiceView(ServiceKey("public", "g", "s"))
    view.apply_snapshot({"epoch": 1, "revision": 1, "instances": []})
    view.apply_notification(msg)
    view.listing()


def test_split_address_forms() -> None:
    assert split_address("10.0.0.1:7800") == ("10.0.0.1", 7800)
    assert split_address("[::1]:7800") == ("::1", 7800)
    assert split_address("::1:7800") == ("::1", 7800)
    for bad in ("", "host", "host:0", "host:x", ":80", "a b:1", "a/b:1", 5, None):
        try:
            split_address(bad)
        except RemoteProtocolError:
            continue
        raise AssertionError(f"{bad!r} accepted")


def test_a_listed_session_renewal_round_trips_and_bad_lists_are_refused() -> None:
    from meshreg.core.results import SessionRenewed
    from meshreg.model import InstanceId
    from meshreg.wire.result_maps import session_renewed_map

    key = ServiceKey("public", "g", "s")
    held = ((key, InstanceId("10.0.0.1", 80, "DEFAULT")),)
    wire = session_renewed_map(SessionRenewed(1, True, held=held, held_more=True))
    renewal = decode_result("session_renew", check_result("session_renew", wire))
    assert renewal.held == (("g", "s", "10.0.0.1", 80, "DEFAULT"),) and renewal.held_more
    assert "held" not in session_renewed_map(SessionRenewed(1, True))
    entry = {"group": "g", "service": "s", "ip": "x", "port": 80, "cluster": "D"}
    for bad in ([{**entry, "port": "80"}], [{**entry, "group": 1}], ["x"]):
        try:
            check_result("session_renew", {"instances": 1, "held": bad})
        except RemoteProtocolError:
            continue
        raise AssertionError(f"accepted held={bad!r}")


def test_a_session_renewal_s_digest_round_trips_and_bad_ones_are_refused() -> None:
    """PROTOCOL.md 2.3b ``digest`` (review78 F4): optional (an older node sends none), an
    integer in 0..2^64-1 (msgpack uint64) when sent."""
    from meshreg.core.results import SessionRenewed
    from meshreg.wire.result_maps import session_renewed_map

    top = 2**64 - 1
    for digest in (0, 1, top):
        wire = session_renewed_map(SessionRenewed(2, True, digest=digest))
        back = msgpack.unpackb(msgpack.packb(wire))
        renewal = decode_result("session_renew", check_result("session_renew", back))
        assert renewal.digest == digest
    assert "digest" not in session_renewed_map(SessionRenewed(2, True))
    older = decode_result("session_renew", check_result("session_renew", {"instances": 2}))
    assert older.digest is None
    for bad in (-1, 2**64, 1.0, "1", True, [1], b"\x01"):
        try:
            check_result("session_renew", {"instances": 2, "digest": bad})
        except RemoteProtocolError:
            continue
        raise AssertionError(f"accepted digest={bad!r}")
