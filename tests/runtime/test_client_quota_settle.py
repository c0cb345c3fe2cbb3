"""review37 F5: a client key's count of instances (``max_instances_per_client``) drops
only for a deregister that removed the instance; a deregister refused (here: as late,
past its deadline) used to free its place before the core refused it, so a key held any
number of instances.  A register refused here leaves no count behind.  A NodeRuntime
with no sockets, on a fake clock, serving one keyed client."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import msgpack

from meshreg.config import NodeConfig
from meshreg.runtime.node import NodeRuntime
from meshreg.security.acl import Access, Principal, Rule
from meshreg.wire.replies import encode_request

START = 1764547200.0
APP = Principal("app", (Rule("*", "*", "*", Access.ADMIN),))


def runtime() -> NodeRuntime:
    config = NodeConfig(host="127.0.0.1", port=7800)
    config = replace(config, limits=replace(config.limits, max_instances_per_client=2))
    return NodeRuntime(config, clock=lambda: START, epoch=1)


def call(rt: NodeRuntime, op: str, **fields: Any) -> dict[str, Any]:
    frames = rt._serve([b"client-1", b"", encode_request(op, 7, **fields)], START, APP)
    rt._carry_out(rt.core.take_effects(), START)
    assert frames is not None
    reply: dict[str, Any] = msgpack.unpackb(frames[-1], raw=False)
    return reply


def test_a_deregister_refused_as_late_keeps_the_instance_counted() -> None:
    rt = runtime()
    one = {"service": "s", "ip": "10.0.0.1"}
    assert call(rt, "register", **one, port=1)["ok"]
    assert call(rt, "register", **one, port=2)["ok"]
    assert call(rt, "register", **one, port=3)["error"]["name"] == "RESOURCE_EXHAUSTED"
    late = int(START * 1000) - 60_000
    for port in (1, 2):
        reply = call(rt, "deregister", **one, port=port, deadline=late)
        assert reply["error"]["name"] == "UNAVAILABLE", reply
    assert rt.holdings.count() == 2  # nothing removed: nothing freed
    assert call(rt, "register", **one, port=3)["error"]["name"] == "RESOURCE_EXHAUSTED"
    assert call(rt, "deregister", **one, port=1)["ok"]  # applied: frees its place at once
    assert rt.holdings.count() == 1
    assert call(rt, "deregister", **one, port=9)["ok"]  # removes nothing, frees nothing
    assert rt.holdings.count() == 1
    assert call(rt, "register", **one, port=3)["ok"]


def test_a_register_refused_here_leaves_no_count() -> None:
    rt = runtime()
    late = int(START * 1000) - 60_000
    one = {"service": "s", "ip": "10.0.0.1"}
    reply = call(rt, "register", **one, port=1, deadline=late)
    assert reply["error"]["name"] == "UNAVAILABLE", reply
    assert rt.holdings.count() == 0
