"""The client plane and the peer plane: which ops each accepts, their size and structure
limits, decided by the caller (the port), never by the body (issue 10: H4, L3)."""

from __future__ import annotations

import tracemalloc
from typing import Any

import msgpack
import pytest

from meshreg.errors import ErrorCode
from meshreg.wire import limits, messages
from meshreg.wire.messages import (
    CLIENT_OPS,
    FORWARDED_OPS,
    Beat,
    GetCluster,
    RegisterInstance,
    RequestRejected,
    decode_body,
    parse_message,
    parse_request,
)
from meshreg.wire.peer import ListDigests, Reconcile, parse_peer_message, parse_peer_request

WRITE = {"service": "orders", "ip": "10.0.0.1", "port": 8080}
PEER_BODIES: dict[str, dict[str, Any]] = {
    "digests": {"cursor": None, "limit": 10, "node": "n2", "ready": True},
    "reconcile": {"node": "n2", "services": []},
}


def body(op: str, **fields: Any) -> dict[str, Any]:
    return {"v": 1, "id": 5, "op": op, **fields}


def rejected(fn: Any, arg: Any) -> RequestRejected:
    with pytest.raises(RequestRejected) as info:
        fn(arg)
    assert info.value.message
    return info.value


# -- ops per plane ----------------------------------------------------------------------------
@pytest.mark.parametrize("op", sorted(PEER_BODIES))
def test_a_peer_op_from_a_client_is_permission_denied(op: str) -> None:
    exc = rejected(parse_message, body(op, **PEER_BODIES[op]))
    assert exc.code is ErrorCode.PERMISSION_DENIED
    assert exc.message == f"peer operation {op!r} is not accepted on the client port"
    assert (exc.req_id, exc.op) == (5, op)  # the reply can be matched


def test_peer_ops_are_accepted_on_the_peer_plane() -> None:
    assert type(parse_peer_message(body("digests", **PEER_BODIES["digests"]))) is ListDigests
    req = parse_peer_message(body("reconcile", **PEER_BODIES["reconcile"]))
    assert type(req) is Reconcile and req.node == "n2" and req.services == ()


@pytest.mark.parametrize("op", FORWARDED_OPS)
def test_a_forwarded_write_parses_the_same_on_both_planes(op: str) -> None:
    extra = {"update": {"enabled": False}, "service_set": {"protect_threshold": 0.5}}
    extra["register_batch"] = {"instances": [WRITE, {**WRITE, "port": 0}]}
    msg = body(op, **WRITE, **extra.get(op, {}))
    assert parse_peer_message(msg) == parse_message(msg)


@pytest.mark.parametrize("op", ["instances", "services", "stats", "ping", "cluster", "nope"])
def test_reads_are_not_accepted_on_the_peer_plane(op: str) -> None:
    exc = rejected(parse_peer_message, body(op, service="orders"))
    assert exc.code is ErrorCode.UNKNOWN_OP
    assert "peer port" in exc.message and "reconcile" in exc.message


def test_cluster_stays_a_client_op() -> None:
    assert parse_message(body("cluster")) == GetCluster(5)
    assert "cluster" in CLIENT_OPS


def test_the_header_is_checked_first_on_both_planes() -> None:
    for parse in (parse_message, parse_peer_message):
        assert rejected(parse, [1]).code is ErrorCode.MALFORMED
        assert rejected(parse, {"v": 1, "id": -1, "op": "reconcile"}).code is (
            ErrorCode.INVALID_ARGUMENT
        )
        assert rejected(parse, {"v": 2, "id": 1, "op": "reconcile"}).code is (
            ErrorCode.UNSUPPORTED_VERSION
        )


# -- size: the caller's limit, checked before decoding ---------------------------------------
def reconcile_of(size: int) -> bytes:
    """A body that starts like our encoder's reconcile (op first) and is ``size`` bytes."""
    head = msgpack.packb({"op": "reconcile", "v": 1, "id": 1, "node": "n2"})
    pad_len = size - len(head) - 9  # one more entry: "pad" (4 bytes), a bin32 header (5)
    assert pad_len > 0
    return (
        bytes([head[0] + 1])
        + head[1:]
        + b"\xa3pad"
        + b"\xc6"
        + pad_len.to_bytes(4, "big")
        + b"\0" * pad_len
    )[:size]


def test_an_8_mib_reconcile_from_a_client_is_too_large_without_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The probe's H4: a client body starting with "op":"reconcile" got the peer limit and
    was decoded whole (623 MB RSS, 1.6 s). Now: TOO_LARGE at 64 KiB, nothing decoded."""
    big = reconcile_of(limits.MAX_PEER_BODY_BYTES)
    assert len(big) == limits.MAX_PEER_BODY_BYTES and b"reconcile" in big[:48]

    def no_decoding(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("decoded a body above the client limit")

    monkeypatch.setattr(messages, "_unpackb", no_decoding)
    monkeypatch.setattr(messages, "unpack_peer", no_decoding)
    tracemalloc.start()
    try:
        for parse in (parse_request, decode_body):
            exc = rejected(parse, big)
            assert exc.code is ErrorCode.TOO_LARGE
            assert f"the limit is {limits.MAX_BODY_BYTES}" in exc.message
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


def test_one_byte_over_each_plane_limit_is_too_large() -> None:
    assert rejected(decode_body, b"\xc0" * (limits.MAX_BODY_BYTES + 1)).code is (
        ErrorCode.TOO_LARGE
    )
    with pytest.raises(RequestRejected) as info:
        decode_body(b"\xc0" * (limits.MAX_PEER_BODY_BYTES + 1), limits.MAX_PEER_BODY_BYTES)
    assert info.value.code is ErrorCode.TOO_LARGE
    assert rejected(parse_peer_request, b"\xc0" * (limits.MAX_PEER_BODY_BYTES + 1)).code is (
        ErrorCode.TOO_LARGE
    )


def test_a_peer_body_above_the_client_limit_decodes_on_the_peer_plane() -> None:
    msg = body("reconcile", node="n2", services=[], pad="x" * 60_000, pad2="y" * 60_000)
    packed = msgpack.packb(msg)
    assert len(packed) > limits.MAX_BODY_BYTES
    assert rejected(parse_request, packed).code is ErrorCode.TOO_LARGE
    assert type(parse_peer_request(packed)) is Reconcile


# -- structure: bounded by the decoder, before validation ------------------------------------
def nested(depth: int, leaf: bytes = b"\xc0") -> bytes:
    return b"\x91" * depth + leaf  # [[[...[nil]...]]]


def in_metadata(raw_value: bytes) -> bytes:
    """A register whose metadata value is ``raw_value`` (already msgpack)."""
    head = msgpack.packb({"v": 1, "id": 3, "op": "register", **WRITE})
    return bytes([head[0] + 1]) + head[1:] + b"\xa8metadata\x81\xa1k" + raw_value


@pytest.mark.parametrize("plane", ["client", "peer"])
def test_deeply_nested_msgpack_is_malformed_or_rejected_without_recursion(plane: str) -> None:
    decode = (
        decode_body if plane == "client" else lambda b: decode_body(b, limits.MAX_PEER_BODY_BYTES)
    )
    parse = parse_message if plane == "client" else parse_peer_message
    too_deep = rejected(decode, nested(limits.MAX_NESTING + 1))
    assert too_deep.code is ErrorCode.MALFORMED and "nested deeper" in too_deep.message
    assert rejected(decode, in_metadata(nested(50_000))).code is ErrorCode.MALFORMED
    # as deep as the decoder goes: decoded, then rejected by a validator that never recurses
    msg = decode(in_metadata(nested(limits.MAX_NESTING - 3)))
    exc = rejected(parse, msg)
    assert exc.code is ErrorCode.INVALID_ARGUMENT and "metadata" in exc.message
    assert rejected(parse, decode(nested(limits.MAX_NESTING))).code is ErrorCode.MALFORMED


def test_maps_and_arrays_are_bounded_per_plane() -> None:
    big_map = {f"k{i}": "v" for i in range(limits.MAX_MAP_ENTRIES + 1)}
    for max_bytes in (limits.MAX_BODY_BYTES, limits.MAX_PEER_BODY_BYTES):
        with pytest.raises(RequestRejected) as info:
            decode_body(msgpack.packb(body("register", metadata=big_map)), max_bytes)
        assert info.value.code is ErrorCode.TOO_LARGE and "max_map_len" in info.value.message
    long_list = msgpack.packb(body("ping", extra=[0] * (limits.MAX_ARRAY_LEN + 1)))
    assert rejected(decode_body, long_list).code is ErrorCode.TOO_LARGE
    assert decode_body(long_list, limits.MAX_PEER_BODY_BYTES)["op"] == "ping"
    too_long = msgpack.packb([0] * (limits.MAX_PEER_ENTRIES + 1))
    with pytest.raises(RequestRejected) as info:
        decode_body(too_long, limits.MAX_PEER_BODY_BYTES)
    assert info.value.code is ErrorCode.TOO_LARGE


def test_a_peer_body_of_empty_maps_stops_at_the_container_budget() -> None:
    """8 MiB of empty maps took ~600 MB to decode; the budget stops it at ~30 MB."""
    inner = b"\xdd" + (100_000).to_bytes(4, "big") + b"\x80" * 100_000
    big = b"\xdc" + (83).to_bytes(2, "big") + inner * 83
    assert len(big) <= limits.MAX_PEER_BODY_BYTES
    tracemalloc.start()
    try:
        with pytest.raises(RequestRejected) as info:
            decode_body(big, limits.MAX_PEER_BODY_BYTES)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.code is ErrorCode.TOO_LARGE and "maps and arrays" in info.value.message
    assert peak < 60_000_000, peak


def test_a_realistic_reconcile_fits_the_peer_budget() -> None:
    """The largest reconcile the core sends (MAX_PEER_ENTRIES instances with metadata)
    stays within the container budget."""
    instance = {
        "ip": "10.0.0.1",
        "port": 1,
        "cluster": "DEFAULT",
        "weight": 1.0,
        "enabled": True,
        "healthy": True,
        "metadata": {"zone": "a"},
        "version": 1,
        "alive": 1,
        "down": 0,
    }
    service = {"namespace": "public", "group": "G", "service": "s", "remove": []}
    service["upsert"] = [instance] * 30_000
    service["settings"] = [0.0, 1, {}]
    packed = msgpack.packb(body("reconcile", node="n2", services=[service]))
    req = parse_peer_request(packed)
    assert type(req) is Reconcile and len(req.services[0].upserts) == 30_000


def test_binary_and_ext_values_are_rejected_by_type() -> None:
    for value in (b"orders", msgpack.ExtType(1, b"x")):
        exc = rejected(
            parse_request, msgpack.packb(body("register", **{**WRITE, "service": value}))
        )
        assert exc.code is ErrorCode.INVALID_ARGUMENT and "'service'" in exc.message


def test_the_plane_split_leaves_parsing_of_client_requests_unchanged() -> None:
    assert parse_request(msgpack.packb(body("beat", **WRITE))) == Beat(
        5,
        messages.ServiceKey("public", "DEFAULT_GROUP", "orders"),
        messages.InstanceId("10.0.0.1", 8080, "DEFAULT"),
    )
    reg = parse_request(msgpack.packb(body("register", **WRITE, weight=3)))
    assert type(reg) is RegisterInstance and reg.weight == 3.0 and type(reg.weight) is float
