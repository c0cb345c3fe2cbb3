"""Fuzzing the wire decoders (issue 10): random bytes, random msgpack structures and
mutations of valid messages, on both planes and the replication channel.

Properties, for every input:

* only :class:`RequestRejected` (requests) or :class:`RemoteProtocolError` (peer
  messages, replies to peer calls) escapes; never a TypeError, KeyError, RecursionError ...;
* a rejection carries a wire error code and a non-empty message;
* whatever is accepted is within the limits a client request is held to: every
  name passes ``check_name``, every host and cluster ``check_instance_id``, every
  stamp is in 0..MAX_STAMP (the H1 invariant: a peer cannot smuggle in what a
  client may not send).

Bounded and deterministic (derandomize) so CI runs the same examples each time.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import msgpack
from helpers import fuzz_settings
from hypothesis import given
from hypothesis import strategies as st
from test_peer_validation import payload

from meshreg.configcenter.model import check_config_key, check_request_id
from meshreg.errors import ErrorCode, RemoteProtocolError
from meshreg.wire import limits
from meshreg.wire.config_messages import ListenConfig, PublishConfig
from meshreg.wire.messages import (
    CLIENT_OPS,
    PEER_PLANE_OPS,
    RequestRejected,
    check_instance_id,
    check_key,
    decode_body,
    parse_message,
)
from meshreg.wire.peer import (
    Beacon,
    ListDigests,
    Reconcile,
    ReplicatedDelta,
    ServicePayload,
    decode_peer_reply,
    decode_replication,
    encode_beacon,
    encode_delta,
    parse_digest_page,
    parse_peer_message,
    parse_reconcile_reply,
)

FUZZ = fuzz_settings(300)  # deterministic: the same examples every run

# -- values ---------------------------------------------------------------------------------
ints = st.one_of(
    st.integers(-(2**63), 2**64 - 1),
    st.sampled_from([0, 1, -1, 65535, 65536, 2**63 - 1, 2**63, 2**64 - 1, -(2**63)]),
)
texts = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        [
            "",
            "public",
            "orders",
            "orders\0evil",
            "a b",
            "\x1b[31m",
            "10.0.0.1",
            "::1",
            "n2",
            "270f9e65a80226eccd82c99cdd0dd2fb",
            "270F9E65A80226ECCD82C99CDD0DD2FB",
            "0" * 31,
            "0123456789abcdef0123456789abcdef",
            "0123456789abcdef/",
            "x" * 65,
        ]
    ),  # fmt: skip
)
scalars = st.one_of(st.none(), st.booleans(), ints, st.floats(), texts, st.binary(max_size=8))
FIELDS = [
    "v", "id", "op", "node", "epoch", "seq", "namespace", "group", "service", "upsert",
    "remove", "settings", "ip", "port", "cluster", "weight", "enabled", "healthy",
    "metadata", "version", "alive", "down", "services", "cursor", "limit", "ready",
    "address", "members", "digests", "more", "data_id", "revision", "md5", "request_id",
    "content",
]  # fmt: skip
values = st.recursive(  # maps with keys our parsers read, so they get past the first checks
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), st.sampled_from(FIELDS)), inner, max_size=4),
    ),
    max_leaves=16,
)

PAYLOAD = payload()
VALID_MESSAGES: list[dict[str, Any]] = [
    {"v": 1, "id": 1, "op": "reconcile", "node": "n2", "services": [PAYLOAD]},
    {"v": 1, "id": 2, "op": "digests", "cursor": ["public", "G", "s"], "limit": 5},
    {"v": 1, "id": 3, "op": "register", "service": "orders", "ip": "10.0.0.1", "port": 1},
    {"v": 1, "id": 4, "op": "beat", "service": "orders", "ip": "10.0.0.1", "port": 1},
    {"v": 1, "id": 5, "op": "cluster"},
    {"v": 1, "id": 6, "op": "config_listen", "data_id": "app.yaml", "revision": 3,
     "md5": "270f9e65a80226eccd82c99cdd0dd2fb"},
    {"v": 1, "id": 7, "op": "config_publish", "data_id": "app.yaml", "content": "a: 1",
     "request_id": "0123456789abcdef0123456789abcdef"},
]  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn, base: Any) -> Any:
    """``base`` with a few values somewhere inside replaced, deleted or added."""
    msg = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        target = msg
        for _ in range(draw(st.integers(0, 4))):  # walk down a random path
            if isinstance(target, dict) and target:
                child = target[draw(st.sampled_from(sorted(target, key=str)))]
            elif isinstance(target, list) and target:
                child = target[draw(st.integers(0, len(target) - 1))]
            else:
                break
            if not isinstance(child, (dict, list)):
                break
            target = child
        if isinstance(target, dict):
            key = draw(st.one_of(st.sampled_from(sorted(target) or ["x"]), st.sampled_from(FIELDS)))
            if draw(st.booleans()) and key in target:
                del target[key]
            else:
                target[key] = draw(values)
        elif isinstance(target, list) and target:
            target[draw(st.integers(0, len(target) - 1))] = draw(values)
    return msg


def accepted_within_limits(req: Any) -> None:
    """What a parser let through holds only what a client could send."""
    if type(req) is Reconcile:
        for p in req.services:
            within_limits(p)
    elif type(req) is ListDigests and req.cursor is not None:
        check_key(*req.cursor)
    elif isinstance(req, ListenConfig | PublishConfig):  # the config fields (wire/config_*)
        assert check_config_key(*req.key) == req.key
        if isinstance(req, ListenConfig):
            assert req.md5 in (None, "") or re.fullmatch("[0-9a-f]{32}", req.md5), req.md5
        else:
            assert check_request_id(req.request_id or None) == req.request_id
    elif hasattr(req, "key"):
        check_key(*req.key)


def within_limits(p: ServicePayload) -> None:
    check_key(*p.key)
    for v in p.upserts:
        check_instance_id(v.ip, v.port, v.cluster)
        assert all(0 <= s <= limits.MAX_STAMP for s in (v.version, v.alive, v.down))
    for iid, t_version, t_alive in p.removals:
        check_instance_id(*iid)
        assert 0 <= t_version <= limits.MAX_STAMP and 0 <= t_alive <= limits.MAX_STAMP
    if p.settings is not None:
        assert 0 <= p.settings[1] <= limits.MAX_STAMP


def parse_both_planes(body: bytes) -> None:
    for max_bytes, parse, ops in (
        (limits.MAX_BODY_BYTES, parse_message, CLIENT_OPS),
        (limits.MAX_PEER_BODY_BYTES, parse_peer_message, PEER_PLANE_OPS),
    ):
        try:
            req = parse(decode_body(body, max_bytes))
        except RequestRejected as exc:
            assert isinstance(exc.code, ErrorCode) and exc.message
            continue
        assert req.op in ops
        accepted_within_limits(req)


def replication(kind: bytes, body: bytes) -> None:
    try:
        msg = decode_replication([kind, body])
    except RemoteProtocolError as exc:
        assert exc.message
        return
    if type(msg) is ReplicatedDelta:
        within_limits(msg.payload)


def peer_reply_bytes(body: bytes) -> None:
    try:
        decode_peer_reply(body)
    except RemoteProtocolError as exc:
        assert exc.message


def replies(value: Any) -> None:
    for parse in (parse_reconcile_reply, parse_digest_page):
        try:
            result = parse(value)
        except RemoteProtocolError as exc:
            assert exc.message
            continue
        if isinstance(result, tuple):
            for p in result:
                within_limits(p)


# -- the fuzz tests -------------------------------------------------------------------------------
@FUZZ
@given(body=st.binary(max_size=400))
def test_random_bytes(body: bytes) -> None:
    parse_both_planes(body)
    for kind in (b"delta", b"beacon", b"digest", b"x"):
        replication(kind, body)
    peer_reply_bytes(body)


@FUZZ
@given(value=values)
def test_random_msgpack_structures(value: Any) -> None:
    body = msgpack.packb(value)
    parse_both_planes(body)
    replication(b"delta", body)
    replies(value)
    peer_reply_bytes(body)


@FUZZ
@given(msg=st.sampled_from(VALID_MESSAGES).flatmap(mutated))
def test_mutated_requests_on_both_planes(msg: Any) -> None:
    parse_both_planes(msgpack.packb(msg))


@FUZZ
@given(
    payload=mutated(PAYLOAD),
    kind=st.sampled_from([b"delta", b"beacon", b"digest"]),
)
def test_mutated_replication_messages(payload: Any, kind: bytes) -> None:
    delta = msgpack.unpackb(
        encode_delta(
            ReplicatedDelta("n2", 1, 1, parse_reconcile_reply({"services": [PAYLOAD]})[0])
        )[1]
    )
    body = {**delta, **payload} if isinstance(payload, dict) else payload
    replication(kind, msgpack.packb(body))
    beacon = msgpack.unpackb(encode_beacon(Beacon("n2", "10.0.0.2:1", 1, True, 1, ("n1",)))[1])
    if isinstance(payload, dict):
        beacon.update({k: v for k, v in payload.items() if k in beacon})
    replication(b"beacon", msgpack.packb(beacon))


@FUZZ
@given(
    reply=st.one_of(
        mutated({"services": [PAYLOAD, PAYLOAD]}),
        mutated({"node": "n2", "digests": [["public", "G", "s", 1, 2]], "more": True}),
    )
)
def test_mutated_peer_replies(reply: Any) -> None:
    replies(reply)


@FUZZ
@given(depth=st.integers(0, 3000), leaf=st.sampled_from([b"\xc0", b"\x80", b"\xa1x"]))
def test_nesting_at_any_depth(depth: int, leaf: bytes) -> None:
    body = b"\x91" * depth + leaf
    parse_both_planes(body)
    replication(b"delta", body)
    wrapped = b"\x81\xa2op" + body  # inside a map, where a parser reads a field
    parse_both_planes(wrapped)
