"""The ``revisions`` read (a watcher's periodic resync in one request): which of a
client's views a pull would change, through the wire as a client sends it."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from answers import served_map

from meshreg.core.health import HealthPolicy
from meshreg.core.registry import RegistryNode
from meshreg.errors import ErrorCode
from meshreg.model import InstanceId, ServiceKey
from meshreg.wire.limits import MAX_REVISIONS_CHECK
from meshreg.wire.messages import (
    DeregisterInstance,
    RegisterInstance,
    RequestRejected,
    SetService,
    parse_request,
)

IID = InstanceId("10.0.0.1", 80, "DEFAULT")
EPOCH = 7


def key(service: str) -> ServiceKey:
    return ServiceKey("public", "G", service)


def node_with(*services: str) -> RegistryNode:
    node = RegistryNode(HealthPolicy(), EPOCH, 0.0)
    for s in services:
        served_map(node, RegisterInstance(1, key(s), IID, 1.0, True, {}), 0.0)
    return node


def pulled(node: RegistryNode, service: str) -> tuple[int, bool]:
    """(revision, holds instances) of a client's view right after a pull."""
    body = msgpack.packb({"v": 1, "id": 1, "op": "instances", "namespace": "public",
                          "group": "G", "service": service})  # fmt: skip
    r = served_map(node, parse_request(body), 1.0)
    return r["revision"], bool(r["instances"])


def check(node: RegistryNode, entries: list[Any], epoch: int = EPOCH, **extra: Any) -> Any:
    body = msgpack.packb({"v": 1, "id": 1, "op": "revisions", "namespace": "public",
                          "epoch": epoch, "services": entries, **extra})  # fmt: skip
    return served_map(node, parse_request(body), 1.0)


def entry(node: RegistryNode, service: str) -> list[Any]:
    return ["G", service, *pulled(node, service)]


def test_views_just_pulled_are_current_and_a_change_makes_one_stale() -> None:
    node = node_with("a", "b", "c")
    views = [entry(node, s) for s in ("a", "b", "c")]
    assert check(node, views) == {"epoch": EPOCH, "stale": []}
    other = InstanceId("10.0.0.2", 80, "DEFAULT")
    served_map(node, RegisterInstance(1, key("b"), other, 1.0, True, {}), 2.0)
    assert check(node, views)["stale"] == [1]


def test_another_epoch_makes_every_view_stale() -> None:
    node = node_with("a", "b")
    views = [entry(node, "a"), entry(node, "b")]
    assert check(node, views, epoch=EPOCH + 1) == {"epoch": EPOCH, "stale": [0, 1]}


def test_an_absent_service_is_current_while_the_view_is_empty_whatever_its_revision() -> None:
    """An absent service's revision is the node-wide one, which every change elsewhere
    moves: comparing it would re-pull every view of an absent service at each resync."""
    node = node_with("a")
    empty = entry(node, "nothing")
    assert empty[3] is False
    served_map(node, RegisterInstance(1, key("z"), IID, 1.0, True, {}), 2.0)  # moves it
    assert check(node, [empty])["stale"] == []
    served_map(node, RegisterInstance(1, key("nothing"), IID, 1.0, True, {}), 3.0)
    assert check(node, [empty])["stale"] == [0]  # it exists now


def test_a_view_holding_instances_of_a_service_gone_here_is_stale() -> None:
    node = node_with("a")
    view = entry(node, "a")
    served_map(node, DeregisterInstance(1, key("a"), IID), 2.0)
    assert check(node, [view])["stale"] == [0]


def test_an_absent_service_with_settings_is_always_checked_by_a_pull() -> None:
    node = node_with()
    served_map(node, SetService(1, key("s"), 0.5, None), 1.0)
    assert check(node, [entry(node, "s")])["stale"] == [0]


def test_a_view_the_client_may_not_read_is_answered_stale() -> None:
    from dataclasses import replace

    node = node_with("a", "secret")
    views = [entry(node, "a"), entry(node, "secret")]
    body = msgpack.packb({"v": 1, "id": 1, "op": "revisions", "epoch": EPOCH, "services": views})
    req = replace(parse_request(body), visible=lambda group, service: service != "secret")
    assert served_map(node, req, 1.0)["stale"] == [1]


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"epoch": -1}, "field 'epoch' must be an integer"),
        ({"epoch": "7"}, "field 'epoch' must be an integer"),
        ({"services": {"a": 1}}, "field 'services' must be an array"),
        ({"services": [["G", "a", 1]]}, "services[0] must be [group, service, revision, held]"),
        ({"services": [["G", "a", -1, True]]}, "services[0] must be"),
        ({"services": [["G", "a", 1, 1]]}, "services[0] must be"),
        ({"services": [["G", "a\x00b", 1, True]]}, "services[0]: field 'service' may only"),
        ({"services": [["", "a", 1, True]]}, "services[0]: field 'group' must be 1..128"),
    ],
)
def test_bad_checks_are_refused_naming_the_field(fields: dict[str, Any], says: str) -> None:
    body = {"v": 1, "id": 1, "op": "revisions", "namespace": "public", "epoch": 1,
            "services": [], **fields}  # fmt: skip
    with pytest.raises(RequestRejected) as err:
        parse_request(msgpack.packb(body))
    assert err.value.code == ErrorCode.INVALID_ARGUMENT
    assert says in err.value.message and err.value.message.startswith("revisions: ")


def test_more_entries_than_the_limit_are_refused_too_large() -> None:
    entries = [["G", f"s{i}", 1, True] for i in range(MAX_REVISIONS_CHECK + 1)]
    body = {"v": 1, "id": 1, "op": "revisions", "epoch": 1, "services": entries}
    with pytest.raises(RequestRejected) as err:
        parse_request(msgpack.packb(body))
    assert err.value.code == ErrorCode.TOO_LARGE and "split the check" in err.value.message


def test_a_member_catching_up_refuses_the_check_as_it_refuses_pulls() -> None:
    """It may not hold every instance yet: "current" from it would keep a view it cannot
    vouch for (review24 F8, as for ``instances``)."""
    from meshreg.config import ClusterPolicy
    from meshreg.core.distro import DistroNode, NodeState

    node = DistroNode(HealthPolicy(), ClusterPolicy(), "n1", "10.0.0.1:7800",
                      [("n2", "10.0.0.2:7800")], EPOCH, 0.0)  # fmt: skip
    assert node.state is NodeState.CATCHING_UP
    body = {"v": 1, "id": 1, "op": "revisions", "epoch": EPOCH, "services": [["G", "a", 1, True]]}
    with pytest.raises(RequestRejected) as err:
        served_map(node, parse_request(msgpack.packb(body)), 0.5)
    assert err.value.code == ErrorCode.UNAVAILABLE and "catching up" in err.value.message
