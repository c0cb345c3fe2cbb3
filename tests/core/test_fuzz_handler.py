"""Fuzzing parse_request + RegistryNode.handle with hostile bodies (and clock steps).

Properties, for every body:

* only :class:`RequestRejected` escapes parsing or handling;
* a rejected request leaves the store byte-for-byte unchanged and queues no effect;
* an accepted request's result encodes as a reply;
* afterwards a valid register + query still works.
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
from answers import served
from helpers import fuzz_settings
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from meshreg.core.distro import ClusterPolicy, DistroNode
from meshreg.core.health import HealthPolicy
from meshreg.core.registry import RegistryNode
from meshreg.core.results import Written
from meshreg.core.versions import TAG_BITS
from meshreg.errors import ErrorCode
from meshreg.model import InstanceId, ServiceKey
from meshreg.wire import limits
from meshreg.wire.messages import REGISTRY_OPS as OPS  # the core's (configs: config_plane)
from meshreg.wire.messages import RegisterInstance, RequestRejected, parse_request
from meshreg.wire.replies import decode_reply, encode_error, encode_ok
from meshreg.wire.result_maps import to_wire

FUZZ = fuzz_settings(250)  # deterministic: the same examples every run

KNOWN = [
    ServiceKey("public", "DEFAULT_GROUP", "orders"),
    ServiceKey("public", "DEFAULT_GROUP", "pay"),
    ServiceKey("dev", "G", "orders"),
]
NOW = 100.0


def populated_node() -> DistroNode:
    """A node (a lone cluster member, as the runtime runs it) with three services."""
    node = DistroNode(
        HealthPolicy(), ClusterPolicy(), "n1", "127.0.0.1:7800", [], 99, 0.0, detect_stalls=False
    )
    for i, key in enumerate(KNOWN):
        fields = {"namespace": key.namespace, "group": key.group, "service": key.service}
        for port in (8080, 8081):
            body = msgpack.packb(
                {"v": 1, "id": i, "op": "register", **fields, "ip": "10.0.0.1", "port": port}
            )
            served(node, parse_request(body), 90.0 if port == 8080 else 80.0)
    node.tick(NOW - 4.0)  # the 8081s (silent 16 s) go unhealthy
    node.take_effects()
    assert node.store.instance_count() == (3, 3)
    return node


def state(node: RegistryNode) -> bytes:
    """The whole table, invisible fields included, as deterministic bytes."""
    services = []
    for key in sorted(node.store.services):
        svc = node.store.services[key]
        records = [
            [
                list(r.id),
                r.weight,
                r.enabled,
                r.healthy,
                sorted(r.metadata.items()),
                r.registered_at,
                r.last_beat,
            ]
            for r in sorted(svc.instances.values(), key=lambda r: r.id)
        ]
        services.append([list(key), svc.revision, records])
    views = [to_wire(node.registry.instances_result(k, h)) for k in KNOWN for h in (False, True)]
    return msgpack.packb([node.store.revision, services, views])


def _event(label: str) -> None:
    if currently_in_test_context():  # see --hypothesis-show-statistics
        event(label)


def check(node: RegistryNode, body: bytes) -> RequestRejected | None:
    """Apply ``body`` the way the runtime does and check the properties."""
    before = state(node)
    req = None
    try:
        req = parse_request(body)
        result = served(node, req, NOW)
    except RequestRejected as exc:
        if req is None:  # refused before the core saw it: the caller counts it
            node.registry.rejected(exc)
        _event(f"rejected: {exc.code.name}")
        assert isinstance(exc.code, ErrorCode)
        assert isinstance(exc.message, str) and exc.message
        assert 0 <= exc.req_id <= limits.MAX_REQUEST_ID
        decode_reply(encode_error(exc.req_id, exc.code, exc.message))  # answerable
        assert state(node) == before, "a rejected request changed the store"
        assert node.take_effects() == []
        return exc
    assert req is not None
    _event(f"accepted: {req.op}")
    reply = decode_reply(encode_ok(req.req_id, result))
    assert reply["ok"] is True and reply["id"] == req.req_id
    node.take_effects()
    return None


def still_works(node: RegistryNode) -> None:
    key = ServiceKey("public", "DEFAULT_GROUP", "after-fuzz")
    req = RegisterInstance(1, key, InstanceId("192.0.2.1", 1, "DEFAULT"), 1.0, True, {})
    assert isinstance(served(node, req, NOW), Written)
    result = node.registry.instances_result(key, True)
    assert [(i[0], i[1]) for i in result.instances] == [("192.0.2.1", 1)]
    assert result.revision == node.store.revision


# -- value strategies ------------------------------------------------------------------------------
ints = st.one_of(
    st.integers(-(2**63), 2**64 - 1),
    st.sampled_from([0, 1, -1, 65535, 65536, 10000, 10001, 2**32, 2**63, 2**64 - 1, -(2**63)]),
)
floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e308, 10000.0, 10000.000001]),
)
texts = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        ["", "public", "DEFAULT_GROUP", "orders", "10.0.0.1", "::1", "a b", "\x00", "fe80::1%x"]
    ),
    st.integers(0, 3000).map(lambda n: "x" * n),
)
scalars = st.one_of(st.none(), st.booleans(), ints, floats, texts, st.binary(max_size=20))
msgpack_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(
            st.one_of(st.text(max_size=8), st.binary(max_size=4), ints), inner, max_size=5
        ),
    ),
    max_leaves=20,
)
metadata_values = st.one_of(
    st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=5),
    st.dictionaries(st.text(max_size=10), msgpack_values, max_size=3),
    st.integers(0, 80).map(lambda n: {f"k{i}": "v" for i in range(n)}),
)
weird_values = st.one_of(msgpack_values, metadata_values)

FIELDS = [
    "v",
    "id",
    "op",
    "namespace",
    "group",
    "service",
    "ip",
    "port",
    "cluster",
    "weight",
    "enabled",
    "metadata",
    "healthy_only",
]


@st.composite
def valid_maps(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(st.sampled_from(OPS))
    key = draw(st.sampled_from(KNOWN))
    msg: dict[str, Any] = {"v": 1, "id": draw(st.integers(0, 2**64 - 1)), "op": op}
    if op in ("register", "deregister", "beat", "instances"):
        msg.update(namespace=key.namespace, group=key.group, service=key.service)
    if op in ("register", "deregister", "beat"):
        msg.update(ip=draw(st.sampled_from(["10.0.0.1", "10.0.0.2"])), port=8080)
    if op == "register":
        msg.update(weight=2.0, enabled=True, metadata={"zone": "a"})
    if op == "instances":
        msg["healthy_only"] = draw(st.booleans())
    if op == "services":
        msg["namespace"] = key.namespace
    if op == "namespaces":
        msg["page_size"] = draw(st.integers(1, 10_000))
    if op == "revisions":
        msg.update(namespace=key.namespace, epoch=draw(st.integers(0, 2**63 - 1)))
        msg["services"] = [[key.group, key.service, draw(st.integers(0, 99)), draw(st.booleans())]]
    if op == "register_batch":
        msg["namespace"] = key.namespace
        msg["instances"] = [
            {"group": key.group, "service": key.service, "ip": f"10.0.0.{n}", "port": 8080}
            for n in range(1, draw(st.integers(1, 3)) + 1)
        ]
    return msg


@st.composite
def almost_valid_maps(draw: st.DrawFn) -> dict[str, Any]:
    msg = draw(valid_maps())
    field = draw(st.sampled_from(FIELDS + sorted(msg)))
    if draw(st.booleans()) and field in msg:
        del msg[field]
    else:
        msg[field] = draw(weird_values)
    return msg


# -- the fuzz tests --------------------------------------------------------------------------------
@FUZZ
@given(body=st.binary(max_size=600))
def test_random_bytes(body: bytes) -> None:
    node = populated_node()
    check(node, body)
    still_works(node)


@FUZZ
@given(value=msgpack_values)
def test_random_msgpack_values(value: Any) -> None:
    node = populated_node()
    check(node, msgpack.packb(value))
    still_works(node)


@FUZZ
@given(msg=almost_valid_maps())
def test_almost_valid_requests(msg: dict[str, Any]) -> None:
    node = populated_node()
    exc = check(node, msgpack.packb(msg))
    req_id = msg.get("id")
    id_ok = type(req_id) is int and 0 <= req_id <= limits.MAX_REQUEST_ID
    if exc is not None and exc.code not in (ErrorCode.MALFORMED, ErrorCode.TOO_LARGE):
        # the error reply can be matched to its request whenever the id was readable
        assert exc.req_id == (req_id if id_ok else 0), exc.message
        if not id_ok:
            assert exc.code is ErrorCode.INVALID_ARGUMENT and "'id'" in exc.message
    still_works(node)


@FUZZ
@given(
    msg=valid_maps(),
    edits=st.lists(
        st.tuples(st.sampled_from(["flip", "cut", "insert"]), st.integers(0, 10**6), ints),
        min_size=1,
        max_size=3,
    ),
)
def test_byte_mutations_of_valid_requests(
    msg: dict[str, Any], edits: list[tuple[str, int, int]]
) -> None:
    body = bytearray(msgpack.packb(msg))
    for kind, pos, value in edits:
        pos %= len(body) + 1
        if kind == "flip" and pos < len(body):
            body[pos] ^= (value % 255) + 1
        elif kind == "cut":
            del body[pos:]
        else:
            body[pos:pos] = bytes([value % 256])
        if not body:
            break
    node = populated_node()
    check(node, bytes(body))
    still_works(node)


def test_valid_requests_of_every_op_pass_the_same_checks() -> None:
    """The oracle itself: unmodified maps are accepted (or NOT_FOUND for a stray beat)."""
    for op in OPS:
        for ip in ("10.0.0.1", "10.0.0.2"):
            node = populated_node()
            msg = {
                "v": 1,
                "id": 5,
                "op": op,
                "service": "orders",
                "ip": ip,
                "port": 8080,
            }
            if op == "reconcile":
                msg.update(node="n2", services=[])
            if op == "update":
                msg.update(enabled=False)
            if op == "service_set":
                msg.update(protect_threshold=0.5)
            if op.startswith("session_"):
                msg.update(session="0123456789abcdef0123456789abcdef")
            if op == "register_batch":
                msg.update(instances=[{"service": "orders", "ip": ip, "port": 8080}])
            if op == "revisions":
                msg.update(epoch=7, services=[["DEFAULT_GROUP", "orders", 3, True]])
            exc = check(node, msgpack.packb(msg))
            if op in ("beat", "update") and ip == "10.0.0.2":
                assert exc is not None and exc.code is ErrorCode.NOT_FOUND
            else:
                assert exc is None, exc
            still_works(node)


def test_one_node_survives_a_long_hostile_session() -> None:
    """Many bodies against the same node; its known state only moves on accepted requests."""
    node = populated_node()
    rejected = 0
    bodies = [
        b"",
        b"\xc1",
        msgpack.packb([1]),
        msgpack.packb({"v": 1, "id": -1, "op": "ping"}),
        msgpack.packb({"v": 2, "id": 1, "op": "ping"}),
        msgpack.packb({"v": 1, "id": 1, "op": "nope"}),
        msgpack.packb({"v": 1, "id": 1, "op": "register", "service": "orders", "port": 1}),
        msgpack.packb({"v": 1, "id": 1, "op": "beat", "service": "ghost", "ip": "x", "port": 1}),
        b"\x00" * (limits.MAX_BODY_BYTES + 1),
    ] * 20
    for body in bodies:
        if check(node, body) is not None:
            rejected += 1
    assert rejected == len(bodies)
    assert sum(node.stats.errors.values()) == len(bodies)
    assert node.stats.errors["NOT_FOUND"] == 20
    still_works(node)


# -- sequences with clock steps ------------------------------------------------------------------
def store_invariants(node: RegistryNode, revision_before: int) -> None:
    """What the table must always satisfy, whatever came in."""
    store = node.store
    assert store.revision >= revision_before
    for key, svc in store.services.items():
        assert svc.instances, f"{key}: an empty service is kept"
        assert svc.revision <= store.revision
        for rec in svc.instances.values():
            assert rec.alive >= rec.version
            if rec.alive:
                assert rec.healthy == (rec.down < rec.alive), rec.id
            assert 0 <= rec.version <= limits.MAX_STAMP and rec.alive <= limits.MAX_STAMP
    healthy, unhealthy = store.instance_count()
    assert healthy + unhealthy == sum(len(s.instances) for s in store.services.values())
    assert node.hlc.last_us <= int(node.registry.wall_stamp(NOW + 10**6) >> TAG_BITS)


@FUZZ
@given(
    steps=st.lists(
        st.tuples(
            st.one_of(valid_maps(), almost_valid_maps()),
            st.sampled_from([0.0, 0.001, 0.5, 3.0, 16.0, 40.0, 400.0]),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_request_sequences_with_random_clock_steps(
    steps: list[tuple[dict[str, Any], float]],
) -> None:
    """Requests interleaved with ticks at random clock steps (sweeps, evictions, stalls):
    only RequestRejected escapes, a rejected request changes nothing, the table holds."""
    node = populated_node()
    now = NOW
    for msg, dt in steps:
        now += dt
        node.tick(now)
        node.take_effects()
        revision = node.store.revision
        before = state(node)
        try:
            served(node, parse_request(msgpack.packb(msg)), now)
        except RequestRejected:
            assert state(node) == before, "a rejected request changed the store"
            assert node.take_effects() == []
        node.take_effects()
        store_invariants(node, revision)
    still_works(node)
