"""Request validation (parse_request), envelopes and reply encoding."""

from __future__ import annotations

import math
from typing import Any

import msgpack
import pytest

from meshreg.errors import ErrorCode
from meshreg.model import InstanceId, ServiceKey
from meshreg.wire import limits, messages
from meshreg.wire.envelope import routable_envelope, split_envelope
from meshreg.wire.messages import (
    Beat,
    DeregisterInstance,
    GetStats,
    ListServices,
    Ping,
    QueryInstances,
    RegisterInstance,
    RequestRejected,
    parse_request,
)
from meshreg.wire.replies import decode_reply, encode_error, encode_ok, encode_request

REQ_ID = 7
MISSING = object()  # a mutation that deletes the field
DEFAULT_KEY = ServiceKey("public", "DEFAULT_GROUP", "orders")
DEFAULT_IID = InstanceId("10.0.0.1", 8080, "DEFAULT")

BASE: dict[str, dict[str, Any]] = {
    "register": {"service": "orders", "ip": "10.0.0.1", "port": 8080},
    "deregister": {"service": "orders", "ip": "10.0.0.1", "port": 8080},
    "beat": {"service": "orders", "ip": "10.0.0.1", "port": 8080},
    "instances": {"service": "orders"},
    "services": {},
    "stats": {},
    "ping": {},
}


def packed(op: str, **changes: Any) -> bytes:
    msg: dict[str, Any] = {"v": 1, "id": REQ_ID, "op": op, **BASE[op]}
    for field, value in changes.items():
        if value is MISSING:
            msg.pop(field, None)
        else:
            msg[field] = value
    return msgpack.packb(msg)


def rejected(body: bytes) -> RequestRejected:
    with pytest.raises(RequestRejected) as info:
        parse_request(body)
    exc = info.value
    assert isinstance(exc.code, ErrorCode)
    assert exc.message
    return exc


# -- valid requests ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("op", "expected"),
    [
        (
            "register",
            RegisterInstance(REQ_ID, DEFAULT_KEY, DEFAULT_IID, 1.0, True, {}),
        ),
        ("deregister", DeregisterInstance(REQ_ID, DEFAULT_KEY, DEFAULT_IID)),
        ("beat", Beat(REQ_ID, DEFAULT_KEY, DEFAULT_IID)),
        ("instances", QueryInstances(REQ_ID, DEFAULT_KEY, False)),
        ("services", ListServices(REQ_ID, "public", None)),
        ("stats", GetStats(REQ_ID)),
        ("ping", Ping(REQ_ID)),
    ],
)
def test_minimal_request_of_every_op_takes_defaults(op: str, expected: object) -> None:
    req = parse_request(packed(op))
    assert req == expected
    assert type(req) is type(expected)
    assert req.op == op


def test_register_with_every_field() -> None:
    req = parse_request(
        packed(
            "register",
            namespace="dev",
            group="G-1",
            service="svc@x:y_z.w-1",
            ip="fe80::1",
            port=65535,
            cluster="east-1_a.b",
            weight=10000,
            enabled=False,
            metadata={"version": "1.2", "k": ""},  # an empty value is fine
            unknown_future_field=[1, 2, 3],
        )
    )
    assert req == RegisterInstance(
        REQ_ID,
        ServiceKey("dev", "G-1", "svc@x:y_z.w-1"),
        InstanceId("fe80::1", 65535, "east-1_a.b"),
        10000.0,
        False,
        {"version": "1.2", "k": ""},
    )
    assert isinstance(req, RegisterInstance) and type(req.weight) is float


@pytest.mark.parametrize(
    ("op", "changes", "expected"),
    [
        ("instances", {"healthy_only": True}, QueryInstances(REQ_ID, DEFAULT_KEY, True)),
        (
            "instances",
            {"namespace": "ns", "group": "g"},
            QueryInstances(REQ_ID, ServiceKey("ns", "g", "orders"), False),
        ),
        ("services", {"namespace": "dev"}, ListServices(REQ_ID, "dev", None)),
        ("services", {"group": "G"}, ListServices(REQ_ID, "public", "G")),
        ("services", {"group": None}, ListServices(REQ_ID, "public", None)),
        (
            "register",
            {"weight": 0},
            RegisterInstance(REQ_ID, DEFAULT_KEY, DEFAULT_IID, 0.0, True, {}),
        ),
        (
            "register",
            {"weight": 2.5, "metadata": None},
            RegisterInstance(REQ_ID, DEFAULT_KEY, DEFAULT_IID, 2.5, True, {}),
        ),
        ("beat", {"cluster": "c"}, Beat(REQ_ID, DEFAULT_KEY, InstanceId("10.0.0.1", 8080, "c"))),
        ("ping", {"id": 0}, Ping(0)),
        ("ping", {"id": limits.MAX_REQUEST_ID}, Ping(limits.MAX_REQUEST_ID)),
        ("stats", {"extra": {"nested": [b"bytes"]}}, GetStats(REQ_ID)),
    ],
)
def test_valid_variants(op: str, changes: dict[str, Any], expected: object) -> None:
    assert parse_request(packed(op, **changes)) == expected


@pytest.mark.parametrize(
    "host",
    [
        "10.0.0.1",
        "::1",
        "2001:db8::8a2e:370:7334",
        "::ffff:1.2.3.4",
        "localhost",
        "a.b-c.example",
        "example.com.",
        "x" * 63 + ".com",
        ".".join(["a" * 63] * 3) + "." + "b" * 61,
    ],
)
def test_valid_hosts_on_register(host: str) -> None:
    req = parse_request(packed("register", ip=host))
    assert isinstance(req, RegisterInstance) and req.instance.ip == host


def test_name_length_limits_are_inclusive() -> None:
    req = parse_request(
        packed(
            "register",
            namespace="n" * limits.MAX_NAMESPACE_LEN,
            group="g" * limits.MAX_GROUP_LEN,
            service="s" * limits.MAX_SERVICE_LEN,
            cluster="c" * limits.MAX_CLUSTER_LEN,
            metadata={"k" * limits.MAX_METADATA_KEY_LEN: "v" * limits.MAX_METADATA_VALUE_LEN},
        )
    )
    assert isinstance(req, RegisterInstance)
    entries = {f"k{i}": "" for i in range(limits.MAX_METADATA_ENTRIES)}
    assert isinstance(parse_request(packed("register", metadata=entries)), RegisterInstance)


def test_body_of_exactly_max_size_is_accepted() -> None:
    body = packed("ping", pad="")
    pad = limits.MAX_BODY_BYTES - len(body) - 2  # str 16 header grows by 2 bytes
    body = packed("ping", pad="x" * pad)
    assert len(body) == limits.MAX_BODY_BYTES
    assert parse_request(body) == Ping(REQ_ID)
    exc = rejected(packed("ping", pad="x" * (pad + 1)))
    assert exc.code is ErrorCode.TOO_LARGE


# -- invalid bodies --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        (b"", ErrorCode.MALFORMED, "msgpack"),
        (b"\xc1", ErrorCode.MALFORMED, "msgpack"),  # the never-used msgpack byte
        (b"\x85\xa1v", ErrorCode.MALFORMED, "msgpack"),  # truncated map
        (b"not msgpack at all \xff\xfe", ErrorCode.MALFORMED, "msgpack"),
        (msgpack.packb({"v": 1}) + b"\x00", ErrorCode.MALFORMED, "msgpack"),  # trailing bytes
        (msgpack.packb({1: 2}), ErrorCode.MALFORMED, "map key is int"),  # not a string
        (msgpack.packb([1, 2, 3]), ErrorCode.MALFORMED, "map"),
        (msgpack.packb("ping"), ErrorCode.MALFORMED, "map"),
        (msgpack.packb(None), ErrorCode.MALFORMED, "map"),
        (msgpack.packb(42), ErrorCode.MALFORMED, "map"),
        (msgpack.packb(b"\x81\xa1v\x01"), ErrorCode.MALFORMED, "map"),
        (b"\x81\xa1v" + b"\xc1", ErrorCode.MALFORMED, "msgpack"),
        (b"\x91" * 100_000, ErrorCode.TOO_LARGE, "limit"),
        (b"\xff" * (limits.MAX_BODY_BYTES + 1), ErrorCode.TOO_LARGE, str(limits.MAX_BODY_BYTES)),
    ],
)
def test_undecodable_bodies(body: bytes, code: ErrorCode, words: str) -> None:
    exc = rejected(body)
    assert exc.code is code
    assert words in exc.message
    assert exc.req_id == 0


def test_body_over_max_is_too_large_even_when_valid() -> None:
    exc = rejected(packed("register", metadata=None, pad="x" * limits.MAX_BODY_BYTES))
    assert exc.code is ErrorCode.TOO_LARGE
    assert str(limits.MAX_BODY_BYTES) in exc.message


@pytest.mark.parametrize(
    "req_id", [MISSING, -1, -(2**63), True, False, 1.0, "1", None, b"\x01", [1], {"a": 1}]
)
def test_bad_request_id(req_id: Any) -> None:
    exc = rejected(packed("ping", id=req_id))
    assert exc.code is ErrorCode.INVALID_ARGUMENT
    assert "'id'" in exc.message
    assert exc.req_id == 0


@pytest.mark.parametrize("version", [MISSING, 0, 2, -1, "1", True, 1.0, None, [1]])
def test_unsupported_version_keeps_request_id(version: Any) -> None:
    exc = rejected(packed("ping", v=version))
    assert exc.code is ErrorCode.UNSUPPORTED_VERSION
    assert "version" in exc.message
    assert exc.req_id == REQ_ID


def test_version_and_deadline_errors_speak_msgpack_not_python() -> None:
    """A client in another language reads "missing", "nil", "the float 2.0", never Python's
    ``None`` or ``2**53`` (a second-language client's review)."""
    assert "(field 'v') missing" in rejected(packed("ping", v=MISSING)).message
    assert "(field 'v') the float 1.0 is not" in rejected(packed("ping", v=1.0)).message
    body = {"v": 1, "id": 7, "op": "register", "service": "s", "ip": "10.0.0.1", "port": 1}
    message = rejected(msgpack.packb({**body, "deadline": 1796621491623.0})).message
    assert "< 2^53), got the float 1796621491623.0" in message, message
    assert "None" not in rejected(packed("ping", v=None)).message


@pytest.mark.parametrize("op", [MISSING, "nope", "PING", "", None, 1, True, ["ping"], "x" * 1000])
def test_unknown_op_keeps_request_id(op: Any) -> None:
    body = msgpack.packb({"v": 1, "id": REQ_ID} | ({} if op is MISSING else {"op": op}))
    exc = rejected(body)
    assert exc.code is ErrorCode.UNKNOWN_OP
    assert "op" in exc.message and "known ops" in exc.message
    assert "register" in exc.message  # lists the known ops
    assert exc.req_id == REQ_ID
    # an attacker's long op is not echoed (the list of known ops grows with the protocol)
    assert len(exc.message) < 120 + len(", ".join(messages.CLIENT_OPS))


BAD_NAME_CHARS = ["a b", "a/b", "a\x00b", "caf\u00e9", "a\nb", "a#b"]
BAD_NAME_TYPES = ["", 5, True, b"svc", ["a"], {}]
BAD_NAMES = BAD_NAME_CHARS + BAD_NAME_TYPES

FIELD_CASES: list[tuple[str, str, Any, ErrorCode]] = [
    # (op, field, value, code) -- value MISSING deletes the field
    *[("register", "service", v, ErrorCode.INVALID_ARGUMENT) for v in [MISSING, None, *BAD_NAMES]],
    *[("instances", "service", v, ErrorCode.INVALID_ARGUMENT) for v in [MISSING, *BAD_NAMES]],
    # a beat checks names by type and length only (see test_beat_validates_...)
    *[("beat", "service", v, ErrorCode.INVALID_ARGUMENT) for v in [MISSING, *BAD_NAME_TYPES]],
    *[("beat", "namespace", v, ErrorCode.INVALID_ARGUMENT) for v in BAD_NAME_TYPES],
    *[("beat", "group", v, ErrorCode.INVALID_ARGUMENT) for v in BAD_NAME_TYPES],
    ("beat", "service", "s" * (limits.MAX_SERVICE_LEN + 1), ErrorCode.INVALID_ARGUMENT),
    ("beat", "namespace", "n" * (limits.MAX_NAMESPACE_LEN + 1), ErrorCode.INVALID_ARGUMENT),
    ("beat", "group", "g" * (limits.MAX_GROUP_LEN + 1), ErrorCode.INVALID_ARGUMENT),
    ("register", "service", "s" * (limits.MAX_SERVICE_LEN + 1), ErrorCode.INVALID_ARGUMENT),
    ("deregister", "service", "s" * (limits.MAX_SERVICE_LEN + 1), ErrorCode.INVALID_ARGUMENT),
    *[("register", "namespace", v, ErrorCode.INVALID_ARGUMENT) for v in BAD_NAMES],
    ("register", "namespace", "n" * (limits.MAX_NAMESPACE_LEN + 1), ErrorCode.INVALID_ARGUMENT),
    *[("deregister", "group", v, ErrorCode.INVALID_ARGUMENT) for v in BAD_NAMES],
    ("register", "group", "g" * (limits.MAX_GROUP_LEN + 1), ErrorCode.INVALID_ARGUMENT),
    ("services", "namespace", "a b", ErrorCode.INVALID_ARGUMENT),
    ("services", "group", "a/b", ErrorCode.INVALID_ARGUMENT),
    ("services", "group", 3, ErrorCode.INVALID_ARGUMENT),
    # ports: same rules for every op that names an instance
    *[
        (op, "port", v, ErrorCode.INVALID_ARGUMENT)
        for op in ("register", "deregister", "beat")
        for v in [MISSING, 0, 65536, -1, 2**40, True, False, "8080", 80.0, None]
    ],
    # ip: type and length for every op, host syntax for register/deregister
    *[
        (op, "ip", v, ErrorCode.INVALID_ARGUMENT)
        for op in ("register", "deregister", "beat")
        for v in [MISSING, "", "h" * (limits.MAX_HOST_LEN + 1), 10, None, b"10.0.0.1", ["x"]]
    ],
    *[
        (op, "ip", v, ErrorCode.INVALID_ARGUMENT)
        for op in ("register", "deregister")
        for v in [
            "bad host",
            "-leading.dash",
            "trailing-.dash",
            "a..b",
            "under_score",
            "[::1]",
            "10.0.0.1:80",
            "1.2.3.4\n",
            "::1::2",
            "h" * 64 + ".com",  # a label over 63 characters
            "caf\u00e9.example",
        ]
    ],
    # cluster
    *[
        (op, "cluster", v, ErrorCode.INVALID_ARGUMENT)
        for op in ("register", "deregister", "beat")
        for v in ["", "c" * (limits.MAX_CLUSTER_LEN + 1), 1, b"c"]
    ],
    *[("register", "cluster", v, ErrorCode.INVALID_ARGUMENT) for v in ["a b", "a:b", "a\x00"]],
    # weight
    *[
        ("register", "weight", v, ErrorCode.INVALID_ARGUMENT)
        for v in [-1, -0.001, math.nan, math.inf, -math.inf, 10001, 10000.5, 2**64 - 1]
        + ["1", True, False, [1.0], {"w": 1}]
    ],
    # booleans
    *[("register", "enabled", v, ErrorCode.INVALID_ARGUMENT) for v in [1, 0, "true"]],
    *[("instances", "healthy_only", v, ErrorCode.INVALID_ARGUMENT) for v in [1, "yes"]],
    # metadata
    *[
        ("register", "metadata", v, ErrorCode.INVALID_ARGUMENT)
        for v in [
            {"a": 1},
            {"a": None},
            {"a": b"bytes"},
            {"a": ["x"]},
            {"a": {"b": "c"}},
            {"a": True},
            {b"bytes-key": "v"},
            {"": "empty key"},
            ["a", "b"],
            "a=b",
            7,
        ]
    ],
    *[
        ("register", "metadata", v, ErrorCode.TOO_LARGE)
        for v in [
            {f"k{i}": "v" for i in range(limits.MAX_METADATA_ENTRIES + 1)},
            {"k": "v" * (limits.MAX_METADATA_VALUE_LEN + 1)},
            {"k" * (limits.MAX_METADATA_KEY_LEN + 1): "v"},
            {f"key{i:03}": "v" * 1000 for i in range(17)},  # 17 * 1006 chars > 16 KiB in total
        ]
    ],
]


def _case_id(case: tuple[str, str, Any, ErrorCode]) -> str:
    op, field, value, _ = case
    shown = "MISSING" if value is MISSING else repr(value)
    return f"{op}-{field}-{shown[:24]}"


@pytest.mark.parametrize(
    "op,field",
    [
        (op, f)
        for op in ("register", "beat", "deregister")
        for f in ("namespace", "group", "cluster")
    ],
)
def test_nil_optional_field_takes_its_default(op: str, field: str) -> None:
    req = parse_request(packed(op, **{field: None}))
    assert req.key == DEFAULT_KEY and req.instance == DEFAULT_IID


def test_nil_weight_enabled_and_healthy_only_take_defaults() -> None:
    reg = parse_request(packed("register", weight=None, enabled=None))
    assert (reg.weight, reg.enabled) == (1.0, True)
    assert parse_request(packed("instances", healthy_only=None)).healthy_only is False


@pytest.mark.parametrize("case", FIELD_CASES, ids=[_case_id(c) for c in FIELD_CASES])
def test_invalid_field_is_named(case: tuple[str, str, Any, ErrorCode]) -> None:
    op, field, value, code = case
    exc = rejected(packed(op, **{field: value}))
    assert exc.code is code, exc.message
    assert field in exc.message, exc.message  # the message names the field ...
    assert exc.message.startswith(f"{op}: ")  # ... and the op
    assert exc.req_id == REQ_ID
    assert exc.op == op


@pytest.mark.parametrize("name", BAD_NAME_CHARS)
def test_beat_validates_by_type_and_length_only(name: str) -> None:
    """The hot path skips name and host syntax: such a beat is simply not found later."""
    req = parse_request(
        packed("beat", namespace=name, group=name, service=name, ip=name, cluster=name)
    )
    assert req == Beat(REQ_ID, ServiceKey(name, name, name), InstanceId(name, 8080, name))


@pytest.mark.parametrize("op", ["register", "deregister"])
@pytest.mark.parametrize("host", ["fe80::1%\n", "fe80::1%\x00", "fe80::1%eth0 x", "::1%a/b"])
def test_register_rejects_control_characters_in_an_ipv6_zone(op: str, host: str) -> None:
    """ipaddress accepts any zone id after '%'; NUL/newline/space must not get into the table."""
    exc = rejected(packed(op, ip=host))
    assert exc.code is ErrorCode.INVALID_ARGUMENT
    assert "'ip'" in exc.message


def test_first_invalid_field_wins_in_a_fixed_order() -> None:
    exc = rejected(packed("register", service="bad name", port=0, weight=-1))
    assert "'service'" in exc.message


# -- envelopes ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("frames", "envelope", "body"),
    [
        ([b"id", b"", b"body"], [b"id", b""], b"body"),
        ([b"id", b"", b""], [b"id", b""], b""),  # empty body: parse_request rejects it
        ([b"r1", b"r2", b"", b"body"], [b"r1", b"r2", b""], b"body"),
        ([b"", b"", b"body"], [b"", b""], b"body"),  # an empty routing id is still an id
        (
            [b"id", *[b"r"] * (limits.MAX_ENVELOPE_FRAMES - 1), b"", b"b"],
            [b"id", *[b"r"] * (limits.MAX_ENVELOPE_FRAMES - 1), b""],
            b"b",
        ),
    ],
)
def test_split_envelope(frames: list[bytes], envelope: list[bytes], body: bytes) -> None:
    assert split_envelope(frames) == (envelope, body)


@pytest.mark.parametrize(
    ("frames", "words"),
    [
        ([], "delimiter"),
        ([b"id"], "delimiter"),
        ([b"id", b"body"], "delimiter"),
        ([b"id", b"x", b"body"], "delimiter"),
        ([b"id", b""], "got 0"),
        ([b"id", b"", b"body", b"extra"], "got 2"),
        ([b"id", b"", b"body", b"1", b"2", b"3", b"4", b"5"], "got 6"),
        ([b"id", b"", b"", b"body"], "got 2"),
        ([b"id", *[b"r"] * limits.MAX_ENVELOPE_FRAMES, b"", b"body"], "too many"),
    ],
)
def test_split_envelope_rejects(frames: list[bytes], words: str) -> None:
    with pytest.raises(RequestRejected) as info:
        split_envelope(frames)
    assert info.value.code is ErrorCode.MALFORMED
    assert words in info.value.message
    assert info.value.req_id == 0


def test_routable_envelope_answers_the_sender() -> None:
    assert routable_envelope([b"peer", b"x", b"y"]) == [b"peer", b""]
    assert routable_envelope([b"peer"]) == [b"peer", b""]


# -- replies ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "req_id",
    [0, 1, 31, 127, 128, 255, 256, 65535, 65536, 2**31, 2**32 - 1, 2**32, 2**63, 2**64 - 1],
)
def test_encode_ok_none_is_the_canonical_map(req_id: int) -> None:
    expected = msgpack.packb({"v": 1, "id": req_id, "ok": True, "result": None})
    assert encode_ok(req_id) == expected
    assert encode_ok(req_id, None) == expected
    assert decode_reply(encode_ok(req_id)) == {"v": 1, "id": req_id, "ok": True, "result": None}


@pytest.mark.parametrize("result", [{"a": [1, 2]}, 0, False, "", [], {}])
def test_encode_ok_with_result(result: Any) -> None:
    assert msgpack.unpackb(encode_ok(9, result)) == {"v": 1, "id": 9, "ok": True, "result": result}


@pytest.mark.parametrize("code", list(ErrorCode))
def test_encode_error_round_trips(code: ErrorCode) -> None:
    reply = decode_reply(encode_error(2**64 - 1, code, "why"))
    assert reply == {
        "v": 1,
        "id": 2**64 - 1,
        "ok": False,
        "error": {"code": int(code), "name": code.name, "message": "why"},
    }


@pytest.mark.parametrize("op", sorted(BASE))
def test_encode_request_round_trips_through_parse(op: str) -> None:
    req = parse_request(encode_request(op, 12345, **BASE[op]))
    assert req.req_id == 12345
    assert req.op == op


@pytest.mark.parametrize("op", ["register", "config_get"])
def test_a_missing_name_field_is_said_to_be_required(op: str) -> None:
    """A field left out reads "is required", not "must be a string" (review5)."""
    fields = {"register": {"ip": "10.0.0.1", "port": 80}, "config_get": {}}[op]
    exc = rejected(msgpack.packb({"v": 1, "id": 3, "op": op, **fields}))
    assert exc.code is ErrorCode.INVALID_ARGUMENT
    field = "service" if op == "register" else "data_id"
    assert f"field '{field}' is required" in exc.message, exc.message


@pytest.mark.parametrize("bad", [0, -5, 2**53, 1.5, "soon", True, [1]])
def test_a_bad_deadline_is_refused_naming_the_field(bad: Any) -> None:
    for op in ("register", "deregister"):
        body = {"v": 1, "id": 7, "op": op, "service": "s", "ip": "10.0.0.1", "port": 1}
        exc = rejected(msgpack.packb({**body, "deadline": bad}))
        assert exc.code is ErrorCode.INVALID_ARGUMENT and "'deadline'" in exc.message


def test_a_deadline_is_read_in_milliseconds_and_a_batch_gives_its_own_to_every_entry() -> None:
    body = {"v": 1, "id": 7, "op": "register", "service": "s", "ip": "10.0.0.1", "port": 1}
    assert parse_request(msgpack.packb({**body, "deadline": 1_700_000_000_250})).deadline == (
        1_700_000_000.25
    )
    assert parse_request(msgpack.packb(body)).deadline is None
    batch = {
        "v": 1,
        "id": 8,
        "op": "register_batch",
        "deadline": 1_700_000_000_000,
        "instances": [{"service": "s", "ip": "10.0.0.1", "port": p} for p in (1, 2)],
    }
    entries = parse_request(msgpack.packb(batch)).entries
    assert [e.deadline for e in entries] == [1_700_000_000.0, 1_700_000_000.0]
    # service_set and session_close take one too (review20 F1, F2)
    ms = 1_700_000_000_500
    setting = {"v": 1, "id": 9, "op": "service_set", "service": "s", "metadata": {}}
    assert parse_request(msgpack.packb({**setting, "deadline": ms})).deadline == ms / 1000
    close = {"v": 1, "id": 9, "op": "session_close", "session": "5e" * 16}
    assert parse_request(msgpack.packb({**close, "deadline": ms})).deadline == ms / 1000
    assert parse_request(msgpack.packb(close)).deadline is None
    for body in (setting, close):
        exc = rejected(msgpack.packb({**body, "deadline": "soon"}))
        assert exc.code is ErrorCode.INVALID_ARGUMENT and "'deadline'" in exc.message


def test_session_renew_may_ask_for_the_session_s_instances() -> None:
    """review36 F2: ``list`` asks the node to name what it holds in the session."""
    renew = {"v": 1, "id": 3, "op": "session_renew", "session": "5e" * 16}
    assert parse_request(msgpack.packb(renew)).listed is False
    assert parse_request(msgpack.packb({**renew, "list": True})).listed is True
    exc = rejected(msgpack.packb({**renew, "list": 1}))
    assert exc.code is ErrorCode.INVALID_ARGUMENT and "'list'" in exc.message
