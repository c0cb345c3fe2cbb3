"""The core's typed results (core/results) and the maps wire makes of them
(wire/result_maps): every result has its encoder, and a reply carries exactly the map
a client has always read (the whole replies, byte for byte, are checked against
docs/PROTOCOL.md by test_protocol_doc.py; here, the parts no example shows)."""

from __future__ import annotations

import types
from typing import get_args

import msgpack
import pytest

from meshreg.core.cluster_messages import (
    DigestPage,
    ReconcileReply,
    ServicePayload,
    SessionBeats,
)
from meshreg.core.effects import InstanceView
from meshreg.core.requests import ListDigests, PushSessions, Reconcile
from meshreg.core.results import (
    BatchResult,
    EntryRefused,
    InstancesResult,
    Result,
    ServicesResult,
)
from meshreg.errors import ErrorCode
from meshreg.model import InstanceId, ServiceKey
from meshreg.wire.peer import (
    decode_batch_reply,
    parse_digest_page,
    parse_peer_request,
    peer_call_fields,
)
from meshreg.wire.replies import encode_ok, encode_request
from meshreg.wire.result_maps import RESULT_MAPS, to_wire

KEY = ServiceKey("public", "DEFAULT_GROUP", "orders")


def test_every_result_has_an_encoder_and_every_encoder_a_result() -> None:
    kinds = {t for t in get_args(Result) if t is not types.NoneType}
    assert kinds == set(RESULT_MAPS)


def test_a_result_nobody_encodes_is_refused_not_sent_as_something_else() -> None:
    class Stray:
        pass

    with pytest.raises(TypeError, match="cannot encode a Stray"):
        encode_ok(1, Stray())


def instances(uptime: float | None) -> InstancesResult:
    row = ("10.0.0.5", 8080, "DEFAULT", 1.0, True, False, {"zone": "eu-1"})
    return InstancesResult(KEY, 7, 3, 0.0, False, {}, (row,), uptime)


def test_instances_map_shows_visible_fields_only_and_uptime_when_told() -> None:
    told = to_wire(instances(2.5))
    assert list(told) == [
        "namespace", "group", "service", "epoch", "revision", "protect_threshold",
        "protected", "service_metadata", "instances", "uptime",
    ]  # fmt: skip
    assert told["instances"] == [
        {
            "ip": "10.0.0.5",
            "port": 8080,
            "cluster": "DEFAULT",
            "weight": 1.0,
            "enabled": True,
            "healthy": False,
            "metadata": {"zone": "eu-1"},
        }
    ]  # fmt: skip
    assert "uptime" not in to_wire(instances(None))


def test_a_reply_is_the_result_map_packed() -> None:
    for result in (instances(1.0), ServicesResult("public", (("g", "s"),), 1, None)):
        reply = msgpack.unpackb(encode_ok(7, result), raw=False)
        assert reply == {"v": 1, "id": 7, "ok": True, "result": to_wire(result)}


def test_batch_results_keep_their_order_and_codes() -> None:
    from meshreg.core.results import Written

    refused = EntryRefused(ErrorCode.RESOURCE_EXHAUSTED, "over quota")
    result = BatchResult((Written(2**40), refused, None))
    assert to_wire(result) == {
        "results": [None, [int(ErrorCode.RESOURCE_EXHAUSTED), "over quota"], None],
        "stamps": [2**40, None, None],  # (None: registered, no stamp told: an older owner)
    }
    # what a relaying node reads back from the owner's reply is the same values
    assert decode_batch_reply(encode_ok(3, result), 3) == list(result.results)


def test_a_digest_page_goes_out_and_comes_back_the_same() -> None:
    page = DigestPage(((KEY, 2**64 - 1, 3),), True, "n1")
    assert to_wire(page) == {
        "node": "n1", "digests": [["public", "DEFAULT_GROUP", "orders", 2**64 - 1, 3]], "more": True
    }  # fmt: skip
    back = parse_digest_page(msgpack.unpackb(msgpack.packb(to_wire(page)), raw=False))
    assert (back.entries, back.more) == (page.entries, page.more)


def test_a_reconcile_reply_carries_the_peer_payloads() -> None:
    view = InstanceView("10.0.0.5", 8080, "DEFAULT", 1.0, True, True, {}, 5, 6, 0)
    payload = ServicePayload(KEY, (view,), ((InstanceId("10.0.0.6", 1, "DEFAULT"), 4, 4),), None)
    (service,) = to_wire(ReconcileReply((payload,)))["services"]
    assert service["upsert"][0]["version"] == 5 and service["remove"] == [
        ["10.0.0.6", 1, "DEFAULT", 4, 4]
    ]


def test_a_peer_call_is_read_back_as_the_request_the_core_made() -> None:
    view = InstanceView("10.0.0.5", 8080, "DEFAULT", 1.0, True, True, {}, 5, 6, 0)
    payload = ServicePayload(KEY, (view,), (), None)
    beats = SessionBeats("n1", 7, (("0123456789abcdef0123456789abcdef", "public", 99),))
    for request in (
        ListDigests(4, None, 2000, "n1", True),
        ListDigests(5, KEY, 10, "n1", False),
        Reconcile(6, "n1", (payload,)),
        PushSessions(7, beats),
    ):
        body = encode_request(request.op, request.req_id, **peer_call_fields(request))
        assert parse_peer_request(body) == request
    assert ListDigests(5, KEY, 10, "n1", False).caller == "n1"  # catching up: it says so
    assert ListDigests(5, KEY, 10, "n1", True).caller is None


def test_a_written_result_packed_by_hand_is_its_map_packed() -> None:
    """``written_packed`` (every register's and deregister's answer) builds no map: the
    bytes must still be msgpack's for ``{"stamp": ...}``, over every stamp's size."""
    from meshreg.core.results import Written
    from meshreg.wire.replies import encode_ok

    for stamp in (0, 127, 2**32 - 1, 2**32, 1_839_688_092_756_611_169, 2**63 - 1):
        packed = encode_ok(9, Written(stamp))
        assert packed == msgpack.packb({"v": 1, "id": 9, "ok": True, "result": {"stamp": stamp}})
