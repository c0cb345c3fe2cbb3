"""Authorization of every client op, of subscription topics, and of listings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshreg.configcenter.model import ConfigKey
from meshreg.errors import ErrorCode
from meshreg.model import ServiceKey
from meshreg.security.acl import NODE, OPEN, Access, Principal, Rule
from meshreg.security.authz import (
    OP_ACCESS,
    authorize,
    authorize_entries,
    authorize_topic,
    permits,
    required_access,
    visible_services,
)
from meshreg.wire import limits
from meshreg.wire.config_replies import config_namespace_topic, config_topic
from meshreg.wire.messages import OPS, PEER_OPS, RequestRejected, decode_body, parse_request
from meshreg.wire.notifications import namespace_topic, topic_for
from meshreg.wire.peer import parse_peer_message

INSTANCE = {"ip": "10.0.0.1", "port": 8080}
SERVICE = {"namespace": "public", "group": "DEFAULT_GROUP", "service": "payments"}

# One well-formed request body per op of wire.messages.OPS.
BODIES: dict[str, dict[str, Any]] = {
    "register": {**SERVICE, **INSTANCE},
    "deregister": {**SERVICE, **INSTANCE},
    "beat": {**SERVICE, **INSTANCE},
    "update": {**SERVICE, **INSTANCE, "enabled": False},
    "service_set": {**SERVICE, "protect_threshold": 0.5},
    "instances": dict(SERVICE),
    "services": {"namespace": "public"},
    "revisions": {
        "namespace": "public",
        "epoch": 1,
        "services": [["DEFAULT_GROUP", "payments", 1, True]],
    },
    "namespaces": {},
    "stats": {},
    "ping": {},
    "cluster": {},
    "digests": {},
    "reconcile": {"node": "n1", "services": []},
    "sessions": {"node": "n1", "epoch": 1, "sessions": []},
    "join": {"node": "n1", "addresses": ["10.0.0.1:7800"]},
    "beacon": {"node": "n1", "address": "10.0.0.1:7800", "epoch": 7, "ready": True, "seq": 0},
    "session_open": {"namespace": "public"},
    "session_renew": {"namespace": "public", "session": "0123456789abcdef0123456789abcdef"},
    "session_close": {"namespace": "public", "session": "0123456789abcdef0123456789abcdef"},
    "register_batch": {"namespace": "public", "instances": [{"service": "payments", **INSTANCE}]},
    "config_get": {"data_id": "app.yaml"},
    "config_list": {"namespace": "public"},
    "config_history": {"data_id": "app.yaml"},
    "config_listen": {"data_id": "app.yaml"},
    "config_unlisten": {"data_id": "app.yaml"},
    "config_publish": {"data_id": "app.yaml", "content": "a: 1"},
    "config_delete": {"data_id": "app.yaml"},
    "config_rollback": {"data_id": "app.yaml", "revision": 1},
    "config_gray": {"data_id": "app.yaml", "content": "a: 2", "labels": {"zone": "a"}},
    "config_promote": {"data_id": "app.yaml"},
    "config_gray_drop": {"data_id": "app.yaml"},
    "config_force_ready": {},
}
CONFIG_READS = ("config_get", "config_history", "config_listen", "config_unlisten")
CONFIG_ADMINS = ("config_delete", "config_rollback", "config_gray", "config_promote")
CONFIG_ADMINS += ("config_gray_drop",)


def request(op: str, **fields: Any) -> Any:
    body = msgpack.packb({"v": 1, "id": 42, "op": op, **BODIES[op], **fields})
    if op in PEER_OPS:  # parsed on the peer plane (the client plane refuses them)
        return parse_peer_message(decode_body(body, limits.MAX_PEER_BODY_BYTES))
    return parse_request(body)


def test_every_wire_op_has_a_row() -> None:
    """A new op added to the wire without deciding who may use it fails here (it would
    otherwise be open to cluster nodes only, silently)."""
    assert set(OPS) | set(PEER_OPS) == set(BODIES) == set(OP_ACCESS)


# (op, access needed, (namespace, group, service) it is scoped by)
EXPECTED = {
    "instances": (Access.READ, ("public", "DEFAULT_GROUP", "payments")),
    "register": (Access.WRITE, ("public", "DEFAULT_GROUP", "payments")),
    "beat": (Access.WRITE, ("public", "DEFAULT_GROUP", "payments")),
    "deregister": (Access.WRITE, ("public", "DEFAULT_GROUP", "payments")),
    "update": (Access.ADMIN, ("public", "DEFAULT_GROUP", "payments")),
    "service_set": (Access.ADMIN, ("public", "DEFAULT_GROUP", "payments")),
    "services": (Access.READ, ("public", None, None)),
    "revisions": (Access.READ, ("public", None, None)),  # then each entry (stale if not)
    "namespaces": (Access.NONE, (None, None, None)),  # the listing names what it may read
    "stats": (Access.READ, ("*", "*", "*")),
    "config_force_ready": (Access.ADMIN, ("*", "*", "*")),  # node-wide
    "ping": (Access.NONE, (None, None, None)),
    "cluster": (Access.NONE, (None, None, None)),
    "digests": (Access.PEER, (None, None, None)),
    "reconcile": (Access.PEER, (None, None, None)),
    "sessions": (Access.PEER, (None, None, None)),
    "join": (Access.PEER, (None, None, None)),
    "beacon": (Access.PEER, (None, None, None)),
    "session_open": (Access.WRITE, ("public", None, None)),
    "session_renew": (Access.WRITE, ("public", None, None)),
    "session_close": (Access.WRITE, ("public", None, None)),
    "register_batch": (Access.WRITE, ("public", None, None)),  # then each entry
    # configs: every data id of the group (a list without a group: of every group)
    "config_list": (Access.READ, ("public", "*", "*")),
    "config_publish": (Access.WRITE, ("public", "DEFAULT_GROUP", "*")),
    **{op: (Access.READ, ("public", "DEFAULT_GROUP", "*")) for op in CONFIG_READS},
    **{op: (Access.ADMIN, ("public", "DEFAULT_GROUP", "*")) for op in CONFIG_ADMINS},
}


@pytest.mark.parametrize("op", sorted(BODIES))
def test_required_access(op: str) -> None:
    access, names = EXPECTED[op]
    assert required_access(request(op)) == (access, *names)


def test_services_listing_of_one_group() -> None:
    req = request("services", group="g1")
    assert required_access(req) == (Access.READ, "public", "g1", None)


READER = Principal("reader", (Rule("public", "*", "*", Access.READ),))
WRITER = Principal("writer", (Rule("public", "*", "pay*", Access.WRITE),))
ADMIN = Principal("admin", (Rule("public", "DEFAULT_GROUP", "payments", Access.ADMIN),))
OTHER_NS = Principal("other", (Rule("private", "*", "*", Access.ADMIN),))
MONITOR = Principal("monitor", (Rule("*", "*", "*", Access.READ),))
PINGER = Principal("pinger", ())
CONFIGURER = Principal("configurer", (Rule("public", "DEFAULT_GROUP", "*", Access.ADMIN),))
OPERATOR = Principal("operator", (Rule("*", "*", "*", Access.ADMIN),))

# op -> the principals allowed (everyone else in PRINCIPALS is denied)
ALLOWED = {
    "instances": {"reader", "writer", "admin", "monitor", "configurer"},
    "services": {"reader", "writer", "admin", "monitor", "configurer"},
    "revisions": {"reader", "writer", "admin", "monitor", "configurer"},
    "register": {"writer", "admin", "configurer"},
    "beat": {"writer", "admin", "configurer"},
    "deregister": {"writer", "admin", "configurer"},
    "update": {"admin", "configurer"},
    "service_set": {"admin", "configurer"},
    "stats": {"monitor", "operator"},
    # admin on everything: admin on one namespace (configurer), read everywhere (monitor): no
    "config_force_ready": {"operator"},
    "ping": {"reader", "writer", "admin", "other", "monitor", "pinger", "configurer"},
    "cluster": {"reader", "writer", "admin", "other", "monitor", "pinger", "configurer"},
    "namespaces": {
        *("reader", "writer", "admin", "other", "monitor", "pinger", "configurer", "operator"),
    },
    "digests": set(),
    "reconcile": set(),
    "sessions": set(),
    "join": set(),
    "beacon": set(),
    # write on some service of the namespace (the session id is the capability)
    "session_open": {"writer", "admin", "configurer"},
    "session_renew": {"writer", "admin", "configurer"},
    "session_close": {"writer", "admin", "configurer"},
    # configs: a rule covering every name of the group ("payments" alone, "pay*": no)
    "config_list": {"reader", "monitor"},  # every group of the namespace
    "config_publish": {"configurer"},
    **{op: {"reader", "monitor", "configurer"} for op in CONFIG_READS},
    **{op: {"configurer"} for op in CONFIG_ADMINS},
    "register_batch": {
        "writer",
        "admin",
        "configurer",
    },  # the batch; each entry is checked on its own
}
for _op, _allowed in ALLOWED.items():  # admin on every name: every client op
    if OP_ACCESS[_op][0] is not Access.PEER:
        _allowed.add("operator")
PRINCIPALS = (READER, WRITER, ADMIN, OTHER_NS, MONITOR, PINGER, CONFIGURER, OPERATOR)


@pytest.mark.parametrize("op", sorted(BODIES))
@pytest.mark.parametrize("principal", PRINCIPALS, ids=lambda p: p.name)
def test_authorize_every_op(op: str, principal: Principal) -> None:
    req = request(op)
    if principal.name in ALLOWED[op]:
        authorize(principal, req)
        return
    with pytest.raises(RequestRejected) as info:
        authorize(principal, req)
    exc = info.value
    assert exc.code == ErrorCode.PERMISSION_DENIED
    assert exc.req_id == 42 and exc.op == op
    assert f"client {principal.name!r}" in exc.message
    assert "private" not in exc.message  # nothing of other namespaces, nor of rules


@pytest.mark.parametrize("op", sorted(BODIES))
def test_node_and_open_may_do_everything(op: str) -> None:
    authorize(NODE, request(op))
    authorize(OPEN, request(op))


def test_each_entry_of_a_batch_is_authorized_on_its_own_service() -> None:
    entries = [
        {"service": "payments", **INSTANCE},
        {"service": "orders", **INSTANCE},  # WRITER may write pay* only
        {"service": "pay-eu", "ip": "10.0.0.2", "port": 0},  # refused by the wire already
    ]
    req = request("register_batch", instances=entries)
    authorize(WRITER, req)  # the namespace: some service there
    screened = authorize_entries(WRITER, req)
    assert screened.entries[0] == req.entries[0]
    assert screened.entries[1].code == ErrorCode.PERMISSION_DENIED
    assert "public/DEFAULT_GROUP/orders" in screened.entries[1].message
    assert screened.entries[2] == req.entries[2]  # its own error stays
    assert authorize_entries(NODE, req) is req and authorize_entries(OPEN, req) is req
    with pytest.raises(RequestRejected):
        authorize(READER, req)


def test_denial_messages() -> None:
    def denial(principal: Principal, op: str, **fields: Any) -> str:
        with pytest.raises(RequestRejected) as info:
            authorize(principal, request(op, **fields))
        return info.value.message

    assert denial(READER, "register") == (
        "client 'reader' may not register in public/DEFAULT_GROUP/payments: needs write "
        "access; ask the operator to extend its ACL entry"
    )
    assert "may not beat in public/DEFAULT_GROUP/payments: needs write" in denial(READER, "beat")
    assert "deregister from public/" in denial(READER, "deregister")
    assert "change instances (instance-set) of public/DEFAULT_GROUP/payments: needs admin" in (
        denial(WRITER, "update")
    )
    assert "change the settings (service-set) of" in denial(WRITER, "service_set")
    assert "may not query instances of public/DEFAULT_GROUP/payments: needs read" in (
        denial(OTHER_NS, "instances")
    )
    assert "may not list services in public: needs read access to some service" in (
        denial(OTHER_NS, "services")
    )
    assert "list services in public/g1:" in denial(OTHER_NS, "services", group="g1")
    assert "may not read node stats" in denial(READER, "stats")
    assert 'namespace = "*", group = "*", service = "*"' in denial(READER, "stats")
    assert denial(READER, "config_publish") == (
        "client 'reader' may not publish configs in public/DEFAULT_GROUP: needs write access "
        'to every name there (a rule with service = "*"); ask the operator to extend its ACL '
        "entry"
    )
    assert "may not list the configs of public: needs read" in denial(CONFIGURER, "config_list")
    assert "roll back configs of public/DEFAULT_GROUP: needs admin" in (
        denial(READER, "config_rollback")
    )
    assert denial(CONFIGURER, "config_force_ready") == (
        "client 'configurer' may not force this node's configs ready (config_force_ready): it "
        "makes the node serve every config without catching up, so it needs admin access to "
        'every namespace (namespace = "*", group = "*", service = "*"); ask the operator to '
        "extend its ACL entry"
    )
    assert "needs admin access to every namespace" in denial(MONITOR, "config_force_ready")
    message = denial(MONITOR, "reconcile")
    assert "'reconcile'" in message and "peer operation" in message and "cluster nodes" in message


def test_beat_names_outside_the_alphabet_are_not_echoed_raw() -> None:
    """A beat's names are checked by length only; a denial must not print escapes raw."""
    req = request("beat", service="\x1b[31mred\x00")
    with pytest.raises(RequestRejected) as info:
        authorize(READER, req)
    assert "\x1b" not in info.value.message and "\x00" not in info.value.message
    assert "'\\x1b[31mred\\x00'" in info.value.message


@dataclass(frozen=True)
class ConfigPublish:  # an op from the future: no row yet
    req_id: int
    op = "config_export"


@dataclass(frozen=True)
class Opless:
    req_id: int


def test_unknown_ops_are_for_nodes_only() -> None:
    for req in (ConfigPublish(5), Opless(6)):
        assert required_access(req) == (Access.PEER, None, None, None)
        authorize(NODE, req)
        authorize(OPEN, req)
        with pytest.raises(RequestRejected) as info:
            authorize(MONITOR, req)
        assert info.value.code == ErrorCode.PERMISSION_DENIED
        assert info.value.req_id == req.req_id
        assert "only cluster nodes" in info.value.message
    with pytest.raises(RequestRejected, match="'config_export'.*no access rule"):
        authorize(MONITOR, ConfigPublish(5))


def test_permits_fails_closed() -> None:
    assert not permits(MONITOR, Access.READ, None, None, None)  # names missing: no
    assert permits(PINGER, Access.NONE, None, None, None)
    assert not permits(MONITOR, Access.PEER, "public", "g", "s")


# -- topics ------------------------------------------------------------------------------------
def test_topics() -> None:
    pay = topic_for(ServiceKey("public", "DEFAULT_GROUP", "payments"))
    assert authorize_topic(READER, pay)
    assert authorize_topic(WRITER, pay)
    assert not authorize_topic(OTHER_NS, pay)
    assert not authorize_topic(PINGER, pay)
    # a namespace: every service of it
    assert authorize_topic(READER, namespace_topic("public"))
    assert not authorize_topic(WRITER, namespace_topic("public"))  # only pay*
    assert not authorize_topic(READER, namespace_topic("private"))
    assert authorize_topic(MONITOR, namespace_topic("anything"))
    # a group: every service of the group
    assert authorize_topic(READER, b"public\0DEFAULT_GROUP\0")
    assert not authorize_topic(ADMIN, b"public\0DEFAULT_GROUP\0")
    # config topics: read on every data id of the group (a namespace: of every group)
    app = config_topic(ConfigKey("public", "DEFAULT_GROUP", "app.yaml"))
    assert authorize_topic(READER, app) and authorize_topic(CONFIGURER, app)
    assert not authorize_topic(ADMIN, app) and not authorize_topic(WRITER, app)
    assert not authorize_topic(OTHER_NS, app)
    assert authorize_topic(READER, config_namespace_topic("public"))
    assert not authorize_topic(CONFIGURER, config_namespace_topic("public"))
    assert authorize_topic(CONFIGURER, config_namespace_topic("public", "DEFAULT_GROUP"))
    # everything else: NODE and OPEN only
    for topic in (
        b"\0config\0",  # every config
        b"\0config\0public",  # a namespace prefix without its NUL
        b"\0config\0public\0DEFAULT_GROUP\0app.yaml\0x\0",
        b"",  # everything
        b"pub",  # every namespace starting with "pub"
        b"public",  # public and public2 and ...
        b"public\0DEFAULT_GROUP",  # group prefix without its NUL
        b"public\0DEFAULT_GROUP\0pay",  # service prefix: payments and pay-anything
        b"public\0DEFAULT_GROUP\0payments\0extra\0",
        b"\0",
        b"public\0\0payments\0",
        b"pub*\0",  # not a name: a wildcard is no wildcard on the wire
        b"p\xc3\xa9\0",
        b"\xff\0",
        b"public\0g\0" + b"s" * 257 + b"\0",
    ):
        assert not authorize_topic(MONITOR, topic), topic
        assert not authorize_topic(READER, topic), topic
        assert authorize_topic(NODE, topic) and authorize_topic(OPEN, topic)


topic_bytes = st.binary(max_size=24) | st.lists(
    st.sampled_from([b"public", b"private", b"DEFAULT_GROUP", b"payments", b"pay", b"\0", b"*"]),
    max_size=7,
).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(topic_bytes, st.lists(st.text("publicaymentsDEFAULT_GROUP", max_size=10), max_size=6))
def test_a_granted_topic_delivers_only_readable_services(topic: bytes, probes: list[str]) -> None:
    """Whatever a granted subscription would deliver (every topic it is a prefix of), the
    principal may read."""
    for principal in PRINCIPALS:
        if not authorize_topic(principal, topic):
            continue
        candidates = [
            ServiceKey("public", "DEFAULT_GROUP", "payments"),
            ServiceKey("private", "DEFAULT_GROUP", "payments"),
            ServiceKey("public", "other", "payments2"),
        ] + [ServiceKey("public", "DEFAULT_GROUP", p) for p in probes if p]
        for key in candidates:
            if topic_for(key).startswith(topic):
                assert principal.may(Access.READ, *key), (principal.name, topic, key)


# -- listings ----------------------------------------------------------------------------------
def test_visible_services() -> None:
    pairs = [("DEFAULT_GROUP", "orders"), ("DEFAULT_GROUP", "payments"), ("g2", "pay-2")]
    assert visible_services(READER, "public", None, pairs) == pairs
    assert visible_services(WRITER, "public", None, pairs) == pairs[1:]
    assert visible_services(ADMIN, "public", None, pairs) == [pairs[1]]
    assert visible_services(OTHER_NS, "public", None, pairs) == []
    dicts = [{"group": g, "service": s} for g, s in pairs]
    assert visible_services(WRITER, "public", None, dicts) == dicts[1:]
    assert visible_services(WRITER, "public", "g2", ["pay-2", "orders"]) == ["pay-2"]
    assert visible_services(NODE, "public", None, pairs) == pairs
    assert visible_services(WRITER, "public", None, iter(pairs)) == pairs[1:]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["g", "DEFAULT_GROUP"]), st.text("pays", min_size=1))),
    st.sampled_from(PRINCIPALS),
)
def test_visible_services_is_exactly_what_may_be_read(
    pairs: list[tuple[str, str]], principal: Principal
) -> None:
    shown = visible_services(principal, "public", None, pairs)
    assert shown == [p for p in pairs if principal.may(Access.READ, "public", *p)]


def test_a_monitoring_key_reads_stats_and_nothing_else() -> None:
    """review64 F3: ``stats = true`` grants node stats (node-wide counts, no names, no
    contents) without read access: before, the metrics key had to read every tenant."""
    monitoring = Principal("monitoring", (), stats=True)
    authorize(monitoring, request("stats"))
    for op in ("instances", "services", "config_get", "config_list", "revisions"):
        with pytest.raises(RequestRejected) as info:
            authorize(monitoring, request(op))
        assert info.value.code == ErrorCode.PERMISSION_DENIED, op
    with pytest.raises(RequestRejected):
        authorize(monitoring, request("config_force_ready"))  # also node-wide: not stats
    with pytest.raises(RequestRejected) as info:
        authorize(READER, request("stats"))
    assert "stats = true in its ACL entry" in info.value.message
