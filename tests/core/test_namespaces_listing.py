"""The ``namespaces`` read: every namespace holding services or live configs, paged by
name, through the wire as a client sends it; what the ACL hides is not named."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import msgpack
import pytest
from answers import served_map

from meshreg.core.health import HealthPolicy
from meshreg.core.registry import RegistryNode
from meshreg.errors import ErrorCode
from meshreg.model import InstanceId, ServiceKey
from meshreg.wire.messages import (
    DeregisterInstance,
    RegisterInstance,
    RequestRejected,
    SetService,
    parse_request,
)

IID = InstanceId("10.0.0.1", 80, "DEFAULT")


def node_with(*namespaces: str) -> RegistryNode:
    node = RegistryNode(HealthPolicy(), 7, 0.0)
    for ns in namespaces:
        served_map(node, RegisterInstance(1, ServiceKey(ns, "G", "svc"), IID, 1.0, True, {}), 0.0)
    return node


def listing(node: RegistryNode, configs: dict[str, int] | None = None, visible: Any = None,
            **fields: Any) -> dict[str, Any]:  # fmt: skip
    req = parse_request(msgpack.packb({"v": 1, "id": 1, "op": "namespaces", **fields}))
    req = replace(req, configs=configs or {}, visible=visible)  # as the runtime sets them
    return served_map(node, req, 1.0)


def names(result: dict[str, Any]) -> list[str]:
    return [n["namespace"] for n in result["namespaces"]]


def test_services_and_configs_are_listed_together_by_name_with_their_counts() -> None:
    node = node_with("b", "a", "a")
    served_map(node, SetService(1, ServiceKey("s", "G", "only-settings"), 0.5, {}), 0.0)
    r = listing(node, configs={"c": 2, "a": 1, "gone": 0})
    assert r["namespaces"] == [
        {"namespace": "a", "services": 1, "configs": 1},
        {"namespace": "b", "services": 1, "configs": 0},
        {"namespace": "c", "services": 0, "configs": 2},
        {"namespace": "s", "services": 1, "configs": 0},  # settings only: a service too
    ]
    assert r["next_after"] is None


def test_a_namespace_emptied_is_no_longer_listed() -> None:
    node = node_with("a", "b")
    served_map(node, DeregisterInstance(1, ServiceKey("a", "G", "svc"), IID), 0.5)
    assert names(listing(node)) == ["b"]


def test_pages_follow_next_after_to_every_namespace_once() -> None:
    node = node_with(*(f"t{k:03d}" for k in range(0, 250, 2)))
    configs = {f"t{k:03d}": 1 for k in range(1, 250, 2)}
    seen: list[str] = []
    fields: dict[str, Any] = {"page_size": 7}
    while True:
        r = listing(node, configs, **fields)
        assert len(r["namespaces"]) <= 7
        seen += names(r)
        if r["next_after"] is None:
            break
        fields["after"] = r["next_after"]
    assert seen == [f"t{k:03d}" for k in range(250)]


def test_what_the_client_may_not_read_is_not_named() -> None:
    node = node_with("team-a", "team-b")
    r = listing(node, {"team-c": 1}, visible=lambda ns: ns != "team-b")
    assert names(r) == ["team-a", "team-c"]
    assert names(listing(node, {"team-c": 1}, visible=lambda ns: False)) == []


@pytest.mark.parametrize(
    "fields, problem",
    [
        ({"page_size": 0}, "page_size"),
        ({"page_size": 10_001}, "page_size"),
        ({"page_size": "10"}, "page_size"),
        ({"after": 3}, "after"),
        ({"after": "bad name"}, "after"),
        ({"after": "x" * 65}, "after"),
    ],
)
def test_bad_fields_are_refused_naming_them(fields: dict[str, Any], problem: str) -> None:
    body = msgpack.packb({"v": 1, "id": 1, "op": "namespaces", **fields})
    with pytest.raises(RequestRejected) as info:
        parse_request(body)
    assert info.value.code in (ErrorCode.INVALID_ARGUMENT, ErrorCode.TOO_LARGE)
    assert problem in info.value.message


def test_a_confined_client_s_counts_look_only_at_the_namespaces_it_reads_in_part() -> None:
    """review37 F6: every ``namespaces`` request of a client that may not read everything
    looked at every service of every tenant (180 ms of the loop per request with 56,000
    services).  A namespace it may read whole takes its running count; only namespaces it
    reads in part are looked at, and the counts are what a look at every service gives."""
    node = RegistryNode(HealthPolicy(), 7, 0.0)
    for ns, n in (("mine", 30), ("part", 5), ("other", 40)):
        for i in range(n):
            key = ServiceKey(ns, "G", f"s{i}")
            served_map(node, RegisterInstance(1, key, IID, 1.0, True, {}), 0.0)
    served_map(node, SetService(1, ServiceKey("part", "G", "only-settings"), 0.5, {}), 0.0)
    looked: list[ServiceKey] = []

    def readable(key: ServiceKey) -> bool:
        looked.append(key)
        return key.namespace == "mine" or key.service in ("s0", "s1", "s2")

    req = parse_request(msgpack.packb({"v": 1, "id": 1, "op": "namespaces"}))
    req = replace(req, visible=lambda ns: ns in ("mine", "part"), readable=readable,
                  whole=lambda ns: ns == "mine")  # fmt: skip
    r = served_map(node, req, 1.0)
    assert r["namespaces"] == [
        {"namespace": "mine", "services": 30, "configs": 0},
        {"namespace": "part", "services": 3, "configs": 0},  # s0, s1, s2 (not s3, s4, "only-")
    ]
    assert {k.namespace for k in looked} == {"part"} and len(looked) == 6
