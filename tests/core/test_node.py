"""RegistryNode: requests in (through the real wire parser), results and effects out."""

from __future__ import annotations

from typing import Any

import pytest
from answers import served_map, stats_map

from meshreg import __version__
from meshreg.core.effects import Effect, InstanceView, ServiceChanged, SyncAnnounced
from meshreg.core.health import HealthPolicy
from meshreg.core.registry import RegistryNode
from meshreg.errors import ErrorCode
from meshreg.model import InstanceId, ServiceKey
from meshreg.wire.messages import Request, RequestRejected, parse_request
from meshreg.wire.replies import encode_request

EPOCH = 4242
SVC = ServiceKey("public", "DEFAULT_GROUP", "orders")
A = InstanceId("10.0.0.1", 8080, "DEFAULT")


def req(op: str, req_id: int = 1, **fields: Any) -> Request:
    return parse_request(encode_request(op, req_id, **fields))


def inst(ip: str = "10.0.0.1", port: int = 8080, service: str = "orders", **extra: Any) -> Any:
    return {"service": service, "ip": ip, "port": port, **extra}


def new_node(now: float = 0.0, policy: HealthPolicy | None = None) -> RegistryNode:
    return RegistryNode(policy or HealthPolicy(), EPOCH, now, "127.0.0.1:7800", detect_stalls=False)


def changes(node: RegistryNode) -> list[ServiceChanged]:
    out = []
    for effect in node.take_effects():
        assert isinstance(effect, ServiceChanged)
        out.append(effect)
    return out


def instances(node: RegistryNode, service: str = "orders", **kw: Any) -> dict[str, Any]:
    result = served_map(node, req("instances", service=service, **kw), 0.0)
    assert isinstance(result, dict)
    return result


def snapshot(node: RegistryNode) -> Any:
    """Everything the store holds, including invisible beat times."""
    return (
        node.store.revision,
        sorted(
            (
                svc.key,
                svc.revision,
                sorted(
                    (r.id, r.weight, r.enabled, r.healthy, r.metadata, r.registered_at, r.last_beat)
                    for r in svc.instances.values()
                ),
            )
            for svc in node.store.services.values()
        ),
    )


# -- register / deregister -------------------------------------------------------------------------
def test_register_returns_its_stamp_and_emits_registered() -> None:
    node = new_node()
    written = served_map(node, req("register", **inst(metadata={"v": "1"}, weight=2)), 1.0)
    iid = InstanceId("10.0.0.1", 8080, "DEFAULT")
    assert written == {"stamp": node.store.services[SVC].instances[iid].version}
    # a repeat changes nothing and is told the same stamp; a change, a newer one
    again = served_map(node, req("register", **inst(metadata={"v": "1"}, weight=2)), 2.0)
    assert again == written
    (change,) = changes(node)
    assert change == ServiceChanged(
        SVC,
        0,
        1,
        (InstanceView("10.0.0.1", 8080, "DEFAULT", 2.0, True, True, {"v": "1"}),),
        (),
        "registered",
    )
    result = instances(node)
    assert result == {
        "namespace": "public",
        "group": "DEFAULT_GROUP",
        "service": "orders",
        "epoch": EPOCH,
        "revision": 1,
        "protect_threshold": 0.0,
        "protected": False,
        "service_metadata": {},
        "uptime": 0.0,
        "synced": False,
        "table_age": 0.0,  # a lone node: its table is as old as the node
        "instances": [
            {
                "ip": "10.0.0.1",
                "port": 8080,
                "cluster": "DEFAULT",
                "weight": 2.0,
                "enabled": True,
                "healthy": True,
                "metadata": {"v": "1"},
            }
        ],
    }


def test_repeat_register_is_invisible_but_refreshes_beat() -> None:
    node = new_node()
    served_map(node, req("register", **inst(metadata={"a": "b"})), 0.0)
    changes(node)
    served_map(node, req("register", **inst(metadata={"a": "b"})), 10.0)
    assert node.take_effects() == []
    assert instances(node)["revision"] == 1
    node.tick(15.0)  # silent only 5 s since the repeat
    assert node.take_effects() == []
    assert instances(node)["instances"][0]["healthy"] is True
    node.tick(25.0)
    assert [c.reason for c in changes(node)] == ["unhealthy"]


@pytest.mark.parametrize(
    "update",
    [{"weight": 5.0}, {"metadata": {"a": "c"}}, {"metadata": {}}, {"enabled": False}],
)
def test_changed_fields_are_an_updated_change(update: dict[str, Any]) -> None:
    node = new_node()
    served_map(node, req("register", **inst(metadata={"a": "b"})), 0.0)
    changes(node)
    served_map(node, req("register", **inst(**{"metadata": {"a": "b"}, **update})), 1.0)
    (change,) = changes(node)
    assert (change.reason, change.base, change.revision) == ("updated", 1, 2)
    (row,) = instances(node)["instances"]
    for field, value in update.items():
        assert row[field] == value


def test_deregister_unknown_is_idempotent() -> None:
    node = new_node()
    assert set(served_map(node, req("deregister", **inst()), 0.0)) == {"stamp"}
    served_map(node, req("register", **inst()), 0.0)
    changes(node)
    before = snapshot(node)
    for fields in (inst(port=1), inst(cluster="other"), inst(service="nope"), inst(ip="10.9.9.9")):
        assert set(served_map(node, req("deregister", **fields), 1.0)) == {"stamp"}
    assert node.take_effects() == []
    assert snapshot(node) == before
    served_map(node, req("deregister", **inst()), 2.0)
    served_map(node, req("deregister", **inst()), 3.0)
    assert [c.reason for c in changes(node)] == ["deregistered"]


def test_emptied_service_disappears_from_services_list() -> None:
    node = new_node()
    served_map(node, req("register", **inst(service="orders")), 0.0)
    served_map(node, req("register", **inst(service="orders", port=2)), 0.0)
    served_map(node, req("register", **inst(service="pay")), 0.0)
    served_map(node, req("register", **inst(service="dev-svc"), namespace="dev", group="G"), 0.0)
    listed = served_map(node, req("services"), 0.0)
    assert listed == {
        "namespace": "public",
        "services": [
            {"group": "DEFAULT_GROUP", "service": "orders"},
            {"group": "DEFAULT_GROUP", "service": "pay"},
        ],
        "count": 2,
        "next_cursor": None,
    }
    served_map(node, req("deregister", **inst(service="orders")), 1.0)
    assert len(served_map(node, req("services"), 1.0)["services"]) == 2  # one instance left
    served_map(node, req("deregister", **inst(service="orders", port=2)), 1.0)
    assert served_map(node, req("services"), 1.0)["services"] == [
        {"group": "DEFAULT_GROUP", "service": "pay"}
    ]
    assert served_map(node, req("services", namespace="dev"), 1.0)["services"] == [
        {"group": "G", "service": "dev-svc"}
    ]
    assert served_map(node, req("services", namespace="dev", group="X"), 1.0)["services"] == []
    assert instances(node)["instances"] == []


def test_instances_healthy_only_and_sorted() -> None:
    node = new_node()
    served_map(node, req("register", **inst(ip="10.0.0.9", port=1)), 0.0)  # silent -> unhealthy
    served_map(node, req("register", **inst(ip="10.0.0.2", port=2, enabled=False)), 10.0)
    served_map(node, req("register", **inst(ip="10.0.0.2", port=1)), 10.0)
    served_map(node, req("register", **inst(ip="10.0.0.1", port=9, cluster="b")), 10.0)
    served_map(node, req("register", **inst(ip="10.0.0.1", port=9, cluster="a")), 10.0)
    node.tick(15.0)
    every = [(r["ip"], r["port"], r["cluster"]) for r in instances(node)["instances"]]
    assert every == [
        ("10.0.0.1", 9, "a"),
        ("10.0.0.1", 9, "b"),
        ("10.0.0.2", 1, "DEFAULT"),
        ("10.0.0.2", 2, "DEFAULT"),
        ("10.0.0.9", 1, "DEFAULT"),
    ]
    healthy = instances(node, healthy_only=True)
    assert [(r["ip"], r["port"]) for r in healthy["instances"]] == [
        ("10.0.0.1", 9),
        ("10.0.0.1", 9),
        ("10.0.0.2", 1),
    ]
    assert all(r["healthy"] and r["enabled"] for r in healthy["instances"])
    assert healthy["revision"] == instances(node)["revision"] == node.store.revision


def test_unknown_service_query_is_empty_with_node_wide_revision() -> None:
    node = new_node()
    result = instances(node, service="ghost")
    assert (result["revision"], result["instances"], result["epoch"]) == (0, [], EPOCH)
    served_map(node, req("register", **inst(service="a")), 0.0)
    served_map(node, req("register", **inst(service="b")), 0.0)
    result = instances(node, service="ghost")
    assert (result["revision"], result["instances"]) == (2, [])


def test_dropped_service_reports_a_revision_not_below_its_last_one() -> None:
    node = new_node()
    served_map(node, req("register", **inst()), 0.0)
    served_map(node, req("deregister", **inst()), 1.0)
    (_, drop) = changes(node)
    assert instances(node)["revision"] == drop.revision == 2
    served_map(node, req("register", **inst(service="other")), 2.0)
    assert instances(node)["revision"] == 3  # the node-wide revision moves on
    served_map(node, req("register", **inst()), 3.0)
    (_, again) = changes(node)
    assert (again.base, again.revision) == (0, 4)  # re-created: watchers see a gap and pull
    assert instances(node)["revision"] == 4


# -- beats ---------------------------------------------------------------------------------------
def test_beat_for_known_instance_is_invisible() -> None:
    node = new_node()
    served_map(node, req("register", **inst()), 0.0)
    changes(node)
    assert served_map(node, req("beat", **inst()), 3.0) is None
    assert node.take_effects() == []
    assert node.store.revision == 1
    svc = node.store.get(SVC)
    assert svc is not None and svc.instances[A].last_beat == 3.0


def test_a_beat_s_unknown_names_are_not_echoed_raw() -> None:
    """A security review: a beat's names are only length-checked (the hot path), and its
    NOT_FOUND message echoed control and bidi characters raw (and the node logs it)."""
    node = new_node()
    with pytest.raises(RequestRejected) as info:
        served_map(node, req("beat", **inst(service="a\nfake log line\u202eevil")), 1.0)
    message = info.value.message
    assert info.value.code is ErrorCode.NOT_FOUND and message.isprintable(), repr(message)
    assert "a\\x0afake log line\\u202eevil" in message  # (as the CLI escapes)


@pytest.mark.parametrize(
    "fields",
    [
        inst(port=1),
        inst(ip="10.0.0.2"),
        inst(cluster="other"),
        inst(service="ghost"),
        {**inst(), "namespace": "dev"},
        {**inst(), "group": "G"},
    ],
)
def test_beat_for_unknown_instance_is_not_found_and_changes_nothing(fields: dict[str, Any]) -> None:
    node = new_node()
    served_map(node, req("register", **inst()), 0.0)
    node.take_effects()
    before = snapshot(node)
    with pytest.raises(RequestRejected) as info:
        served_map(node, req("beat", req_id=77, **fields), 5.0)
    assert info.value.code is ErrorCode.NOT_FOUND
    assert info.value.req_id == 77
    assert info.value.op == "beat"
    assert "register" in info.value.message
    assert snapshot(node) == before
    assert node.take_effects() == []
    assert node.store.get(ServiceKey("public", "DEFAULT_GROUP", "ghost")) is None


def test_beat_heals_unhealthy_instance_at_once() -> None:
    node = new_node()
    served_map(node, req("register", **inst()), 0.0)
    node.tick(15.0)
    reg, mark = changes(node)
    assert mark.reason == "unhealthy"
    served_map(node, req("beat", **inst()), 16.0)
    (heal,) = changes(node)
    assert heal == ServiceChanged(
        SVC,
        mark.revision,
        mark.revision + 1,
        (InstanceView("10.0.0.1", 8080, "DEFAULT", 1.0, True, True, {}),),
        (),
        "recovered",
    )
    assert instances(node, healthy_only=True)["instances"][0]["healthy"] is True
    served_map(node, req("beat", **inst()), 17.0)  # healthy again: invisible
    assert node.take_effects() == []


def test_reregister_after_eviction_gets_new_higher_revision() -> None:
    node = new_node()
    served_map(node, req("register", **inst()), 0.0)
    served_map(node, req("register", **inst(service="other")), 0.0)
    for t in (5.0, 10.0, 15.0, 20.0, 25.0, 30.0):
        node.tick(t)
    evicted = [c for c in changes(node) if c.reason == "evicted"]
    assert {c.key.service for c in evicted} == {"orders", "other"}
    last = max(c.revision for c in evicted)
    with pytest.raises(RequestRejected) as info:
        served_map(node, req("beat", **inst()), 31.0)
    assert info.value.code is ErrorCode.NOT_FOUND
    served_map(node, req("register", **inst()), 31.0)  # what the client does next
    (again,) = changes(node)
    assert (again.reason, again.base, again.revision) == ("registered", 0, last + 1)
    assert instances(node)["revision"] == last + 1
    assert served_map(node, req("beat", **inst()), 32.0) is None


def test_revisions_grow_by_exactly_one_per_visible_change() -> None:
    node = new_node()
    ops: list[tuple[float, str, dict[str, Any]]] = [
        (0.0, "register", inst()),
        (0.0, "register", inst(service="pay")),
        (0.5, "register", inst()),  # repeat: invisible
        (1.0, "register", inst(port=2)),
        (1.0, "beat", inst(port=2)),  # invisible
        (2.0, "register", inst(weight=3)),  # updated
        (2.0, "deregister", inst(port=99)),  # unknown: invisible
        (3.0, "register", inst(service="pay", port=7)),
        (4.0, "deregister", inst(service="pay")),
        (4.0, "instances", {"service": "orders"}),  # query: invisible
        (4.0, "register", inst(service="tmp")),
        (4.0, "deregister", inst(service="tmp")),  # drops "tmp"
        (4.0, "register", inst(service="tmp")),  # re-created
    ]
    seen: list[ServiceChanged] = []
    service_revision: dict[ServiceKey, int] = {}
    for now, op, fields in ops:
        served_map(node, req(op, **fields), now)
        seen += changes(node)
    for t in (5.0, 10.0, 15.0, 20.0):  # everything but "pay"/"tmp" beats goes unhealthy
        served_map(node, req("beat", **inst(service="pay", port=7)), t)
        served_map(node, req("beat", **inst(service="tmp")), t)
        node.tick(t)
        seen += changes(node)
    for t in (21.0, 22.0):  # a heal, then nothing
        served_map(node, req("beat", **inst(port=2)), t)
        seen += changes(node)
    assert [c.revision for c in seen] == list(range(1, len(seen) + 1))
    for c in seen:  # each change chains onto its own service's previous revision
        assert c.base == service_revision.get(c.key, 0)
        service_revision[c.key] = c.revision
        if c.reason == "deregistered" and c.key.service == "tmp":
            del service_revision[c.key]  # dropped; its re-creation starts from base 0
    assert [c.reason for c in seen] == [
        "registered",
        "registered",
        "registered",
        "updated",
        "registered",
        "deregistered",
        "registered",
        "deregistered",
        "registered",
        "unhealthy",
        "recovered",
    ]
    assert node.store.revision == len(seen)


# -- effects and subscriptions -------------------------------------------------------------------
def test_take_effects_drains_and_counts_notifications() -> None:
    node = new_node()
    served_map(node, req("register", **inst()), 0.0)
    served_map(node, req("register", **inst(port=2)), 0.0)
    first = node.take_effects()
    assert len(first) == 2
    assert node.take_effects() == []
    assert node.stats.notifications == 2
    node.subscription_changed(SVC, True)
    assert node.take_effects() == [SyncAnnounced(SVC, 2)]
    assert node.stats.notifications == 3


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (SVC, [SyncAnnounced(SVC, 1)]),  # the service's own revision
        (  # not in the table: the node-wide revision
            ServiceKey("public", "DEFAULT_GROUP", "ghost"),
            [SyncAnnounced(ServiceKey("public", "DEFAULT_GROUP", "ghost"), 2)],
        ),
        (None, []),  # a namespace prefix: nothing to announce
    ],
)
def test_subscription_announces_current_revision(
    key: ServiceKey | None, expected: list[Effect]
) -> None:
    node = new_node()
    served_map(node, req("register", **inst()), 0.0)
    served_map(node, req("register", **inst(service="pay")), 0.0)
    node.take_effects()
    node.subscription_changed(key, True)
    assert node.take_effects() == expected
    node.subscription_changed(key, False)
    assert node.take_effects() == []


def test_subscriber_counts() -> None:
    node = new_node()
    other = ServiceKey("public", "DEFAULT_GROUP", "pay")
    for key in (SVC, SVC, other, None):
        node.subscription_changed(key, True)
    stats = served_map(node, req("stats"), 0.0)
    assert (stats["subscribers"], stats["watched_services"]) == (4, 2)
    node.subscription_changed(SVC, False)
    node.subscription_changed(other, False)
    node.subscription_changed(other, False)  # one too many: ignored
    stats = served_map(node, req("stats"), 0.0)
    assert (stats["subscribers"], stats["watched_services"]) == (2, 1)


def test_watched_follows_subscriptions_and_prefixes() -> None:
    node = new_node()
    other = ServiceKey("public", "DEFAULT_GROUP", "pay")
    assert not node.watched(SVC)
    node.subscription_changed(SVC, True)
    assert node.watched(SVC) and not node.watched(other)
    node.subscription_changed(None, True)  # a prefix: every change may be wanted
    assert node.watched(other)
    node.subscription_changed(None, False)
    node.subscription_changed(SVC, False)
    assert not node.watched(SVC) and not node.watched(other)


# -- stats and ping --------------------------------------------------------------------------------
def test_stats_counters() -> None:
    node = new_node(now=100.0)
    served_map(node, req("register", **inst()), 100.0)
    served_map(node, req("register", **inst(port=2)), 100.0)
    for i in range(10):
        served_map(node, req("beat", **inst()), 100.0 + i * 0.4)
    with pytest.raises(RequestRejected):  # counted by the core
        served_map(node, req("beat", **inst(port=3)), 104.0)
    node.rejected(RequestRejected(ErrorCode.MALFORMED, "garbage"))
    node.rejected(RequestRejected(ErrorCode.MALFORMED, "garbage"))
    node.subscription_changed(SVC, True)
    node.take_effects()
    node.tick(105.0)  # samples the beat counter
    stats = served_map(node, req("stats"), 105.0)
    assert stats["requests"] == {"register": 2, "beat": 11, "stats": 1}
    assert stats["beats_total"] == 11  # an unknown instance's beat is still a beat
    assert stats["beats_per_second"] == pytest.approx(11 / 5.0, abs=0.05)
    assert stats["errors"] == {"NOT_FOUND": 1, "MALFORMED": 2}
    assert stats["errors_total"] == 3
    assert stats["subscribers"] == 1
    assert stats["watched_services"] == 1
    assert stats["instances"] == {"total": 2, "healthy": 2, "unhealthy": 0}
    assert stats["services"] == 1
    assert stats["revision"] == 2
    assert stats["notifications"] == 3
    assert stats["uptime"] == 5.0
    assert stats["epoch"] == EPOCH
    assert stats["version"] == __version__
    assert stats["address"] == "127.0.0.1:7800"
    assert stats["timings"] == {"check_interval": 5.0, "unhealthy_after": 15.0, "evict_after": 30.0}


def test_beat_rate_window_follows_ticks() -> None:
    node = new_node()
    served_map(node, req("register", **inst()), 0.0)
    for t in (5.0, 10.0):
        for _ in range(20):
            served_map(node, req("beat", **inst()), t - 1)
        node.tick(t)
    assert stats_map(node, 10.0)["beats_per_second"] == 4.0
    node.tick(15.0)  # no beats in (10, 15]: the window drops the oldest sample
    assert stats_map(node, 15.0)["beats_per_second"] == 2.0
    node.tick(20.0)
    node.tick(25.0)
    assert stats_map(node, 25.0)["beats_per_second"] == 0.0


def test_stats_instances_split_healthy_unhealthy() -> None:
    node = new_node()
    served_map(node, req("register", **inst()), 0.0)
    served_map(node, req("register", **inst(port=2)), 10.0)
    node.tick(15.0)
    assert stats_map(node, 15.0)["instances"] == {"total": 2, "healthy": 1, "unhealthy": 1}


def test_ping() -> None:
    assert served_map(new_node(), req("ping"), 1.0) == {
        "epoch": EPOCH,
        "version": __version__,
        "address": "127.0.0.1:7800",
        "ready": True,  # the runtime adds config_ready (review24 F12)
        "unhealthy_after": 15.0,  # a client beating per instance learns it here
    }


def test_a_repeat_register_is_a_write_only_after_a_newer_write_of_the_client() -> None:
    """review74 F3: a register repeating what is held is no write (no new stamp, no
    change), as before, when its ``after`` is the record's own stamp (a redo of that
    very write); when ``after`` is newer (the client's deregistration, not here yet) it
    is re-stamped above it and replicated, or that removal would win when it arrives."""
    node = new_node()
    first = served_map(node, req("register", **inst()), 1.0)
    changes(node)
    redo = served_map(node, req("register", **inst(), after=first["stamp"]), 2.0)
    assert redo == first and changes(node) == []  # a redo: nothing written, nothing said
    newer = first["stamp"] + (1 << 20)  # what the client's deregistration elsewhere left
    again = served_map(node, req("register", **inst(), after=newer), 3.0)
    assert again["stamp"] > newer
    assert [c.reason for c in changes(node)] == ["updated"]  # replicated, so it outranks
