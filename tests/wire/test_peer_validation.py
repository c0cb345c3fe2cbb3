"""Peer messages pass the checks client requests pass (issue 10, H1): names, hosts,
clusters, weights and metadata in deltas, reconcile requests and replies, digest
pages and cursors; node ids and addresses in beacons; stamps within the wire's bound."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshreg.core.effects import InstanceView
from meshreg.core.membership import MAX_ADDRESSES
from meshreg.errors import ErrorCode, RemoteProtocolError
from meshreg.model import InstanceId, ServiceKey
from meshreg.wire import limits, messages, peer
from meshreg.wire.messages import RequestRejected, parse_message
from meshreg.wire.peer import (
    MAX_DIGEST_PAGE,
    MAX_MEMBERS,
    MAX_RECONCILE_SERVICES,
    Beacon,
    ReplicatedDelta,
    ServicePayload,
    decode_replication,
    encode_beacon,
    encode_delta,
    instance_to_peer,
    parse_digest_page,
    parse_peer_message,
    parse_reconcile_reply,
    payload_to_wire,
)

KEY = ServiceKey("public", "DEFAULT_GROUP", "orders")
STAMP = 1_700_000_000_000_000 << 10
VIEW = InstanceView("10.0.0.1", 8080, "DEFAULT", 1.0, True, True, {"a": "b"}, STAMP, STAMP, 0)
GONE = InstanceId("10.0.0.2", 8080, "DEFAULT")


def payload() -> dict[str, Any]:
    """A valid service payload as the wire carries it (one instance, a tombstone, settings)."""
    return payload_to_wire(
        ServicePayload(KEY, (VIEW,), ((GONE, STAMP, 0),), (0.5, STAMP, {"x": "y"}))
    )


# (path into a service payload, bad value, what the message names)
BAD_PAYLOAD_FIELDS: list[tuple[tuple[Any, ...], Any, str]] = [
    (("service",), "orders\0evil", "'service'"),  # the probe's: NUL matched orders' topic
    (("service",), "orders evil", "'service'"),
    (("service",), "", "'service'"),
    (("service",), "s" * (limits.MAX_SERVICE_LEN + 1), "'service'"),
    (("namespace",), "public\x1b[31m", "'namespace'"),
    (("group",), 7, "'group'"),
    (("group",), None, "'group'"),
    (("upsert", 0, "ip"), "10.0.0.1\0", "'ip'"),
    (("upsert", 0, "ip"), "not a host", "'ip'"),
    (("upsert", 0, "port"), 0, "'port'"),
    (("upsert", 0, "cluster"), "DEF AULT", "'cluster'"),
    (("upsert", 0, "cluster"), "a\0b", "'cluster'"),
    (("upsert", 0, "weight"), float("nan"), "'weight'"),
    (("upsert", 0, "weight"), limits.MAX_WEIGHT * 2, "'weight'"),
    (("upsert", 0, "metadata"), {"k": "v" * (limits.MAX_METADATA_VALUE_LEN + 1)}, "metadata"),
    (("upsert", 0, "metadata"), {"": "v"}, "metadata key"),
    (("upsert", 0, "metadata"), {"k": 1}, "metadata"),
    (("upsert", 0, "metadata"), [], "metadata"),
    (("upsert", 0, "version"), 2**63, "version"),
    (("upsert", 0, "version"), -1, "version"),
    (("upsert", 0, "alive"), 2**64 - 1, "alive"),
    (("upsert", 0, "down"), True, "down"),
    (("remove", 0, 0), "x\0", "'ip'"),
    (("remove", 0, 2), "bad cluster", "'cluster'"),
    (("remove", 0, 3), 2**63, "version"),
    (("remove", 0, 4), -5, "alive"),
    (("settings", 0), 2.0, "protect_threshold"),
    (("settings", 1), 2**63, "settings version"),
    (("settings", 2), {"k": "v" * 2000}, "metadata"),
]


def with_value(d: Any, path: tuple[Any, ...], value: Any) -> Any:
    d = copy.deepcopy(d)
    target = d
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return d


def delta_frames(p: dict[str, Any], **extra: Any) -> list[bytes]:
    body = {"v": 1, "node": "n2", "epoch": 1, "seq": 1, **p, **extra}
    return [b"delta", msgpack.packb(body)]


def reconcile_msg(*services: dict[str, Any], node: Any = "n2") -> dict[str, Any]:
    return {"v": 1, "id": 4, "op": "reconcile", "node": node, "services": list(services)}


def test_valid_payloads_pass_everywhere() -> None:
    p = payload()
    assert type(decode_replication(delta_frames(p))) is ReplicatedDelta
    assert parse_peer_message(reconcile_msg(p)).services[0].key == KEY
    assert parse_reconcile_reply({"services": [p]})[0].upserts == (VIEW,)
    frames = encode_delta(ReplicatedDelta("n2", 1, 1, parse_reconcile_reply({"services": [p]})[0]))
    assert decode_replication(frames).payload.settings == (0.5, STAMP, {"x": "y"})


@pytest.mark.parametrize(("path", "value", "names"), BAD_PAYLOAD_FIELDS)
def test_a_bad_field_is_rejected_in_every_peer_message(
    path: tuple[Any, ...], value: Any, names: str
) -> None:
    bad = with_value(payload(), path, value)
    with pytest.raises(RemoteProtocolError) as in_delta:
        decode_replication(delta_frames(bad))
    assert names in in_delta.value.message
    with pytest.raises(RequestRejected) as in_reconcile:
        parse_peer_message(reconcile_msg(payload(), bad))
    exc = in_reconcile.value
    assert exc.code in (ErrorCode.INVALID_ARGUMENT, ErrorCode.TOO_LARGE)
    assert exc.message.startswith("reconcile: ") and names in exc.message
    assert (exc.req_id, exc.op) == (4, "reconcile")
    with pytest.raises(RemoteProtocolError) as in_reply:
        parse_reconcile_reply({"services": [payload(), bad]})
    assert in_reply.value.message.startswith("reconcile reply: ")


@pytest.mark.parametrize(
    ("path", "value", "names"), [case for case in BAD_PAYLOAD_FIELDS if case[0][0] == "upsert"]
)
def test_a_bad_instance_after_good_ones_is_rejected(
    path: tuple[Any, ...], value: Any, names: str
) -> None:
    """What passed before (a metadata map, a cluster name, a session id: remembered so
    that equal ones are checked cheaply) never lets a bad value through after it."""
    good = instance_to_peer(replace(VIEW, session="0123456789abcdef0123456789abcdef"))
    second = {**good, "ip": "10.0.0.9"}
    p = {**payload(), "upsert": [good, second, copy.deepcopy(second)]}
    assert len(decode_replication(delta_frames(p)).payload.upserts) == 3
    bad = with_value(p, ("upsert", 2, *path[2:]), value)
    with pytest.raises(RemoteProtocolError) as info:
        decode_replication(delta_frames(bad))
    assert names in info.value.message


@pytest.mark.parametrize(
    "value", [{"a": 1}, {"a": b"b"}, {"a": "b", "c": "d"}, [("a", "b")], "a", None]
)
def test_only_an_equal_metadata_map_rides_on_the_one_checked_before(value: Any) -> None:
    first = instance_to_peer(VIEW)  # metadata {"a": "b"}
    p = {**payload(), "upsert": [first, {**first, "ip": "10.0.0.9", "metadata": value}]}
    if value == {"a": "b", "c": "d"}:  # a different map of strings: checked, and passes
        views = decode_replication(delta_frames(p)).payload.upserts
        assert views[1].metadata == value
        return
    with pytest.raises(RemoteProtocolError, match="metadata"):
        decode_replication(delta_frames(p))


def test_a_bad_session_id_after_a_good_one_is_rejected() -> None:
    good = instance_to_peer(replace(VIEW, session="0123456789abcdef0123456789abcdef"))
    for bad in ("0123456789ABCDEF0123456789ABCDEF", "0123456789abcdef", 7, ["x"]):
        p = {**payload(), "upsert": [good, {**good, "ip": "10.0.0.9", "session": bad}]}
        with pytest.raises(RemoteProtocolError, match="session"):
            decode_replication(delta_frames(p))


@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(st.text(alphabet="0123456789.-a\u0663", max_size=20))
def test_the_dotted_quad_shortcut_accepts_only_what_the_host_name_rule_accepts(
    host: str,
) -> None:
    if messages._IPV4_RE.match(host):
        assert messages._HOSTNAME_RE.match(host), host


def test_the_probes_orders_nul_evil_reconcile_is_refused_on_both_planes() -> None:
    evil = with_value(payload(), ("service",), "orders\0evil")
    evil["upsert"][0]["ip"] = "6.6.6.6"
    exc = pytest.raises(RequestRejected, parse_message, reconcile_msg(evil)).value
    assert exc.code is ErrorCode.PERMISSION_DENIED  # from a client: not even looked at
    exc = pytest.raises(RequestRejected, parse_peer_message, reconcile_msg(evil)).value
    assert exc.code is ErrorCode.INVALID_ARGUMENT and "'service'" in exc.message


def test_a_client_write_and_a_peer_payload_share_the_name_rules() -> None:
    """Whatever a client may not register, a peer may not replicate (one set of checks)."""
    for name in ("orders\0evil", "a b", "x" * 300, "ok-name_1.2:@"):
        client_ok = peer_ok = True
        try:
            parse_message(
                {"v": 1, "id": 1, "op": "register", "service": name, "ip": "1.2.3.4", "port": 1}
            )
        except RequestRejected:
            client_ok = False
        try:
            decode_replication(delta_frames(with_value(payload(), ("service",), name)))
        except RemoteProtocolError:
            peer_ok = False
        assert client_ok == peer_ok, name


@pytest.mark.parametrize(
    "reply",
    [
        None,
        [],
        {"services": "x"},
        {"services": [payload()] * (MAX_RECONCILE_SERVICES + 1)},
        {"services": [{"namespace": "public"}]},
    ],
)
def test_malformed_reconcile_replies_are_rejected(reply: Any) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_reconcile_reply(reply)


def test_reconcile_counts_are_bounded() -> None:
    many = payload()
    many["remove"] = [["10.0.0.9", 1, "DEFAULT", 1, 0]] * 60_000
    with pytest.raises(RequestRejected) as info:
        parse_peer_message(reconcile_msg(many, many))
    assert info.value.code is ErrorCode.TOO_LARGE
    with pytest.raises(RequestRejected):
        parse_peer_message(reconcile_msg(*[payload()] * (MAX_RECONCILE_SERVICES + 1)))


@pytest.mark.parametrize("node", ["", "n\0", "n\x1b[2J", "x" * (limits.MAX_NODE_ID_LEN + 1), 5])
def test_node_ids_must_be_printable(node: Any) -> None:
    with pytest.raises(RequestRejected):
        parse_peer_message(reconcile_msg(payload(), node=node))
    with pytest.raises(RemoteProtocolError):
        decode_replication(delta_frames(payload(), node=node))


def page(*entries: Any, more: Any = False) -> dict[str, Any]:
    return {"node": "n2", "digests": list(entries), "more": more}


def test_digest_pages_are_checked() -> None:
    ok = parse_digest_page(page(["public", "G", "orders", 2**64 - 1, 3]))
    assert ok.entries == ((ServiceKey("public", "G", "orders"), 2**64 - 1, 3),) and not ok.more
    for bad in (
        page(["public", "G", "orders\0evil", 1, 3]),
        page(["public", "G", "orders", -1, 3]),
        page(["public", "G", "orders", 1, -3]),
        page(["public", "G", "orders", 1]),
        page(["public", "G", "orders", 1, 3], more=1),
        page(*[["public", "G", "s", 1, 1]] * (MAX_DIGEST_PAGE + 1)),
        {"digests": "x", "more": False},
        "page",
    ):
        with pytest.raises(RemoteProtocolError) as info:
            parse_digest_page(bad)
        assert info.value.message.startswith("digests reply: ")


def test_digest_cursors_are_checked() -> None:
    ask = {"v": 1, "id": 1, "op": "digests", "limit": 5}
    assert parse_peer_message({**ask, "cursor": ["public", "G", "s"]}).cursor == ServiceKey(
        "public", "G", "s"
    )
    for cursor in (["public", "G", "s\0"], ["public", "G"], "public/G/s"):
        with pytest.raises(RequestRejected):
            parse_peer_message({**ask, "cursor": cursor})


def beacon(**changes: Any) -> list[bytes]:
    kind, body = encode_beacon(Beacon("n2", "10.0.0.2:7400", 1, True, 3, ("n1", "n2")))
    msg = msgpack.unpackb(body)
    msg.update(changes)
    return [kind, msgpack.packb(msg)]


@pytest.mark.parametrize(
    "address", ["[::1]:7400", "::1:7400", "node-a.example:1", "10.0.0.2:65535"]
)
def test_beacon_addresses_that_nodes_use_pass(address: str) -> None:
    assert decode_replication(beacon(address=address)).address == address


@pytest.mark.parametrize(
    "changes",
    [
        {"address": "10.0.0.2"},
        {"address": ":7400"},
        {"address": "10.0.0.2:0"},
        {"address": "10.0.0.2:99999"},
        {"address": "evil host:7400"},
        {"address": "10.0.0.2\0:7400"},
        {"address": "10.0.0.2:７４００"},  # fullwidth digits: isdigit() but not a port
        {"members": ["n1", "n\0"]},
        {"members": ["n1"] * (MAX_MEMBERS + 1)},
        {"members": [1]},
        {"node": "\x1b]0;pwned\x07"},
        {"leads": ["n1", 5]},
        {"leads": {"n1": 1.5}},
        {"leads": {"n1": 10**13}},
        {"leads": {"n\0": 5}},
        {"leads": {f"n{i}": 1 for i in range(MAX_MEMBERS + 1)}},
    ],
)
def test_bad_beacons_are_rejected(changes: dict[str, Any]) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_replication(beacon(**changes))


def test_a_beacons_leads_read_back_sorted_and_signed() -> None:
    b = Beacon("n2", "10.0.0.2:7400", 1, True, 3, leads=(("n3", -8012), ("n1", 40)))
    assert decode_replication(encode_beacon(b)).leads == (("n1", 40), ("n3", -8012))  # type: ignore[union-attr]
    assert decode_replication(beacon()).leads is None  # type: ignore[union-attr]


def test_replication_bodies_are_bounded_like_peer_requests() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_replication([b"delta", b"\xc0" * (limits.MAX_PEER_BODY_BYTES + 1)])
    assert info.value.code is ErrorCode.TOO_LARGE
    with pytest.raises(RemoteProtocolError) as info:
        decode_replication([b"beacon", b"\x91" * 5000 + b"\xc0"])
    assert "nested" in info.value.message


def test_peer_replies_are_decoded_within_the_peer_limits() -> None:
    from meshreg.wire.peer import decode_peer_reply
    from meshreg.wire.replies import encode_error, encode_ok

    assert decode_peer_reply(encode_ok(7, {"services": []})) == (7, True, {"services": []})
    assert decode_peer_reply(encode_error(7, ErrorCode.INTERNAL, "x"))[:2] == (7, False)
    for body, code in (
        (b"\xc0" * (limits.MAX_PEER_BODY_BYTES + 1), ErrorCode.TOO_LARGE),
        (b"\x91" * 2000 + b"\xc0", ErrorCode.MALFORMED),
        (msgpack.packb([1]), ErrorCode.MALFORMED),
        (msgpack.packb({"id": "1", "ok": True}), ErrorCode.MALFORMED),
    ):
        with pytest.raises(RemoteProtocolError) as info:
            decode_peer_reply(body)
        assert info.value.code is code


SID = "0123456789abcdef0123456789abcdef"


def sessions_msg(entries: Any, **extra: Any) -> dict[str, Any]:
    return {
        "v": 1,
        "id": 5,
        "op": "sessions",
        "node": "n2",
        "epoch": 9,
        "sessions": entries,
        **extra,
    }


def test_a_sessions_push_parses_into_the_renewals_it_carries() -> None:
    req = parse_peer_message(sessions_msg([[SID, "public", STAMP]]))
    assert req.op == "sessions" and req.req_id == 5
    assert req.beats.node == "n2" and req.beats.epoch == 9
    assert req.beats.entries == ((SID, "public", STAMP),)


@pytest.mark.parametrize(
    "entries",
    [
        None,
        "x",
        [[SID, "public"]],
        [["not-a-session", "public", STAMP]],
        [[SID, "bad ns", STAMP]],
        [[SID, "public", -1]],
        [[SID, "public", 2**64]],
        [[SID, "public", STAMP]] * 4097,
    ],
)
def test_a_malformed_sessions_push_is_rejected(entries: Any) -> None:
    with pytest.raises(RequestRejected) as info:
        parse_peer_message(sessions_msg(entries))
    assert info.value.code in (ErrorCode.INVALID_ARGUMENT, ErrorCode.TOO_LARGE)
    assert info.value.message.startswith("sessions: ")


def test_a_sessions_push_from_a_client_is_refused_unread() -> None:
    exc = pytest.raises(RequestRejected, parse_message, sessions_msg([[SID, "public", STAMP]]))
    assert exc.value.code is ErrorCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    "changes",
    [
        {"members": ["n2", "n\0"]},
        {"members": ["n2", 1]},
        {"members": [True, "n1"]},  # True == 1: must not pass as any cached key
        {"members": ["n2", {"n1": 1}]},  # unhashable
        {"members": ["n2", ["n1"]]},
        {"members": ["n1"] * (MAX_MEMBERS + 1)},
        {"members": "n1"},
        {"address": "10.0.0.2"},  # the cached member list with a bad address
        {"address": "10.0.0.2", "members": None},
    ],
)
def test_a_beacon_view_that_passed_once_leaves_every_other_checked_in_full(
    changes: dict[str, Any],
) -> None:
    """Beacon views are checked once per (address, member list) (wire/peer
    ``_beacon_view``): any other is refused as without the memo, with the same error."""
    peer._views.clear()
    with pytest.raises(RemoteProtocolError) as fresh:
        decode_replication(beacon(**changes))
    for good in ({}, {"members": ["n2", "n1"]}, {"members": None}, {"members": [1]}):
        try:
            decode_replication(beacon(**good))
        except RemoteProtocolError:
            pass
    with pytest.raises(RemoteProtocolError) as again:
        decode_replication(beacon(**changes))
    assert (again.value.code, again.value.message) == (fresh.value.code, fresh.value.message)


def test_a_beacon_view_is_checked_once_and_decodes_as_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    peer._views.clear()
    checked: list[Any] = []
    real = peer.check_node_id

    def counting(value: Any, field: str = "node") -> str:
        checked.append(value)
        return real(value, field)

    monkeypatch.setattr(peer, "check_node_id", counting)
    first = decode_replication(beacon(members=["n3", "n1", "n2"]))
    assert first.members == ("n1", "n2", "n3") and len(checked) == 4  # node + 3 members
    second = decode_replication(beacon(members=["n3", "n1", "n2"]))
    assert second == first and len(checked) == 5  # the node id only
    third = decode_replication(beacon(members=["n1", "n2"]))  # another view: checked
    assert third.members == ("n1", "n2") and len(checked) == 8
    for i in range(3 * peer._VIEWS_KEPT):  # bounded
        decode_replication(beacon(members=[f"m{i}"]))
    assert len(peer._views) <= peer._VIEWS_KEPT


def join_msg(addresses: Any, **extra: Any) -> dict[str, Any]:
    return {"v": 1, "id": 6, "op": "join", "node": "n2", "addresses": addresses, **extra}


def test_a_join_parses_into_the_addresses_it_carries() -> None:
    req = parse_peer_message(join_msg(["10.0.0.2:7800", "[::1]:7810"]))
    assert req.op == "join" and req.req_id == 6 and req.node == "n2"
    assert req.addresses == ("10.0.0.2:7800", "[::1]:7810")
    fields = peer.peer_call_fields(req)
    assert parse_peer_message({"v": 1, "id": 6, "op": "join", **fields}) == req


@pytest.mark.parametrize(
    "addresses",
    [
        None,
        "10.0.0.2:7800",
        [],
        ["10.0.0.2"],
        ["10.0.0.2:0"],
        ["10.0.0.2:70000"],
        ["bad host:7800"],
        ["10.0.0.2:7800\0"],
        [7800],
        [f"10.0.0.{i % 250}:{7800 + i}" for i in range(MAX_ADDRESSES + 1)],
    ],
)
def test_a_malformed_join_is_rejected(addresses: Any) -> None:
    with pytest.raises(RequestRejected) as info:
        parse_peer_message(join_msg(addresses))
    assert info.value.code in (ErrorCode.INVALID_ARGUMENT, ErrorCode.TOO_LARGE)
    assert info.value.message.startswith("join: ")


def test_a_join_from_a_client_is_refused_unread() -> None:
    exc = pytest.raises(RequestRejected, parse_message, join_msg(["10.0.0.2:7800"]))
    assert exc.value.code is ErrorCode.PERMISSION_DENIED
