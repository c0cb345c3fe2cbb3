"""The paged ``services`` read: pages, cursors, groups and counts (O(page) per request)."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from answers import served_map, stats_map

from meshreg.core.health import HealthPolicy
from meshreg.core.registry import RegistryNode
from meshreg.errors import ErrorCode
from meshreg.model import InstanceId, ServiceKey
from meshreg.wire.limits import DEFAULT_SERVICES_PAGE, MAX_SERVICES_PAGE
from meshreg.wire.messages import (
    DeregisterInstance,
    ListServices,
    RegisterInstance,
    RequestRejected,
    SetService,
    parse_request,
)

IID = InstanceId("10.0.0.1", 80, "DEFAULT")


def node_with(names: list[tuple[str, str, str]]) -> RegistryNode:
    node = RegistryNode(HealthPolicy(), 1, 0.0)
    for ns, group, service in names:
        served_map(
            node, RegisterInstance(1, ServiceKey(ns, group, service), IID, 1.0, True, {}), 0.0
        )
    return node


def services(node: RegistryNode, **fields: Any) -> dict[str, Any]:
    body = msgpack.packb({"v": 1, "id": 1, "op": "services", **fields})
    result: dict[str, Any] = served_map(node, parse_request(body), 1.0)
    return result


def all_pages(node: RegistryNode, **fields: Any) -> tuple[list[tuple[str, str]], int]:
    seen: list[tuple[str, str]] = []
    pages = 0
    cursor = None
    while True:
        reply = services(node, cursor=cursor, **fields)
        pages += 1
        seen += [(s["group"], s["service"]) for s in reply["services"]]
        cursor = reply["next_cursor"]
        if cursor is None:
            return seen, pages


NAMES = [("public", g, f"svc-{i:03d}") for g in ("A", "B", "C") for i in range(25)] + [
    ("dev", "A", "other")
]


@pytest.mark.parametrize(
    ("page_size", "group", "expected_pages", "expected"),
    [
        (10, None, 8, [(g, s) for _, g, s in NAMES[:75]]),  # 75 services: 7 full pages + 5
        (25, None, 3, [(g, s) for _, g, s in NAMES[:75]]),  # a last page exactly full
        (1000, None, 1, [(g, s) for _, g, s in NAMES[:75]]),
        (10, "B", 3, [("B", f"svc-{i:03d}") for i in range(25)]),
        (7, "C", 4, [("C", f"svc-{i:03d}") for i in range(25)]),
        (10, "Z", 1, []),
    ],
)
def test_pages_follow_each_other_to_the_end(
    page_size: int, group: str | None, expected_pages: int, expected: list[tuple[str, str]]
) -> None:
    node = node_with(NAMES)
    fields: dict[str, Any] = {"page_size": page_size}
    if group is not None:
        fields["group"] = group
    seen, pages = all_pages(node, **fields)
    assert seen == expected and pages == expected_pages
    assert services(node, **fields)["count"] == len(expected)  # on every page: the total


def test_a_client_that_ignores_paging_gets_the_first_page_and_the_count() -> None:
    names = [("public", "G", f"s{i:05d}") for i in range(DEFAULT_SERVICES_PAGE + 5)]
    node = node_with(names)
    reply = services(node)
    assert len(reply["services"]) == DEFAULT_SERVICES_PAGE
    assert reply["count"] == DEFAULT_SERVICES_PAGE + 5
    assert reply["next_cursor"] == f"G/s{DEFAULT_SERVICES_PAGE - 1:05d}"
    small = node_with(names[:3])
    assert services(small) == {
        "namespace": "public",
        "services": [{"group": "G", "service": f"s{i:05d}"} for i in range(3)],
        "count": 3,
        "next_cursor": None,
    }


def test_a_cursor_resumes_after_its_service_even_if_it_is_gone() -> None:
    node = node_with([("public", "G", f"s{i}") for i in range(6)])
    first = services(node, page_size=3)
    assert [s["service"] for s in first["services"]] == ["s0", "s1", "s2"]
    served_map(node, DeregisterInstance(1, ServiceKey("public", "G", "s2"), IID), 1.0)
    served_map(node, RegisterInstance(1, ServiceKey("public", "G", "s1a"), IID, 1.0, True, {}), 1.0)
    rest = services(node, page_size=3, cursor=first["next_cursor"])
    assert [s["service"] for s in rest["services"]] == ["s3", "s4", "s5"]
    assert rest["next_cursor"] is None and rest["count"] == 6


def test_services_with_settings_only_are_not_listed_but_count_as_services_in_stats() -> None:
    node = node_with([("public", "G", "a")])
    served_map(node, SetService(1, ServiceKey("public", "G", "b"), 0.5, None), 1.0)
    assert [s["service"] for s in services(node)["services"]] == ["a"]
    assert stats_map(node, 1.0)["usage"]["services"] == 2


def test_a_cursor_from_another_group_does_not_walk_other_groups() -> None:
    node = node_with(NAMES)
    assert services(node, group="C", cursor="A/svc-003")["services"][0]["service"] == "svc-000"
    assert services(node, group="A", cursor="C/svc-003")["services"] == []


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"page_size": 0}, f"'page_size' must be an integer in 1..{MAX_SERVICES_PAGE}"),
        ({"page_size": MAX_SERVICES_PAGE + 1}, "'page_size' must be an integer"),
        ({"page_size": "10"}, "'page_size' must be an integer"),
        ({"page_size": True}, "'page_size' must be an integer"),
        ({"cursor": "no-slash"}, "'cursor' is not a cursor from a services reply"),
        ({"cursor": "G/"}, "'cursor' is not a cursor"),
        ({"cursor": "G/a\x00b"}, "'cursor' is not a cursor"),
        ({"cursor": 5}, "'cursor' is not a cursor"),
        ({"cursor": "G/" + "s" * 300}, "'cursor' is not a cursor"),
    ],
)
def test_bad_paging_fields_are_rejected(fields: dict[str, Any], words: str) -> None:
    body = msgpack.packb({"v": 1, "id": 4, "op": "services", **fields})
    with pytest.raises(RequestRejected) as caught:
        parse_request(body)
    assert caught.value.code is ErrorCode.INVALID_ARGUMENT and words in caught.value.message
    assert caught.value.req_id == 4


def test_the_paging_fields_parse() -> None:
    body = msgpack.packb(
        {"v": 1, "id": 4, "op": "services", "page_size": 50, "cursor": "G:x/a.b-c@d"}
    )
    assert parse_request(body) == ListServices(4, "public", None, 50, ("G:x", "a.b-c@d"))
