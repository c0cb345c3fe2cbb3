"""The config counters in ``stats`` (review11): ``config.rejected`` counts every refused
config request by reason, those the wire's validation refuses before the store included
(they were only in ``errors``), and ``config.subscribers`` counts config topic
subscriptions (``subscribers`` counts service watchers only).  A NodeRuntime with no
sockets, on a fake clock."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from meshreg.config import NodeConfig
from meshreg.configcenter.model import ConfigKey
from meshreg.runtime.node import NodeRuntime
from meshreg.runtime.subscription_gate import SubscriptionGate
from meshreg.wire.config_replies import config_topic
from meshreg.wire.replies import encode_request

START = 1764547200.0


class RecordingSocket:
    def __init__(self) -> None:
        self.sent: list[list[bytes]] = []

    def send_multipart(self, frames: list[bytes], flags: int = 0) -> None:
        self.sent.append(list(frames))


@pytest.fixture
def rt() -> NodeRuntime:
    node = NodeRuntime(NodeConfig(host="127.0.0.1", port=7800), clock=lambda: START, epoch=1)
    node._xpub = RecordingSocket()  # type: ignore[assignment]
    return node


def call(rt: NodeRuntime, op: str, **fields: Any) -> dict[str, Any]:
    frames = rt._serve([b"client-1", b"", encode_request(op, 7, **fields)], START)
    rt._carry_out(rt.core.take_effects(), START)
    assert frames is not None
    reply: dict[str, Any] = msgpack.unpackb(frames[-1], raw=False)
    return reply


def stats(rt: NodeRuntime) -> dict[str, Any]:
    return rt._runtime_stats()["config"]


BAD = [
    ("config_publish", {"data_id": "a b", "content": "x"}, "bad_name"),
    ("config_publish", {"data_id": "x", "content": "x", "type": "ini"}, None),
    ("config_publish", {"data_id": "x", "content": "x", "revision_floor": -1}, "bad_revision"),
    ("config_get", {"data_id": "x", "labels": {"a": 1}}, None),
    ("config_list", {"page_size": 10**6}, None),
    ("config_delete", {"data_id": "x", "if_revision": "1"}, None),
    ("config_history", {"data_id": ""}, None),
]


def test_every_config_request_the_wire_refuses_is_counted_by_reason(rt: NodeRuntime) -> None:
    before_store = len(rt.configs.store)
    for op, fields, reason in BAD:
        reply = call(rt, op, **fields)
        assert not reply["ok"] and reply["error"]["name"] == "INVALID_ARGUMENT", reply
        if reason is not None:
            assert stats(rt)["rejected"].get(reason, 0) >= 1, (op, stats(rt)["rejected"])
    rejected = stats(rt)["rejected"]
    assert sum(rejected.values()) == len(BAD), rejected  # as many as the node's errors:
    errors = call(rt, "stats")["result"]["errors"]
    assert errors == {"INVALID_ARGUMENT": len(BAD)}, errors
    assert len(rt.configs.store) == before_store == 0  # nothing changed
    # the store's own refusals are counted once, not twice (NOT_FOUND by the store)
    reply = call(rt, "config_get", data_id="nothing.here")
    assert reply["error"]["name"] == "NOT_FOUND"
    assert stats(rt)["rejected"]["not_found"] == 1
    assert sum(stats(rt)["rejected"].values()) == len(BAD) + 1
    # a list refused by the store (a cursor no list reply made) is counted too
    reply = call(rt, "config_list", cursor="no-slash-here")
    assert reply["error"]["name"] == "INVALID_ARGUMENT"
    assert stats(rt)["rejected"]["bad_cursor"] == 1
    assert sum(stats(rt)["rejected"].values()) == len(BAD) + 2
    # an accepted request counts nothing
    assert call(rt, "config_list", pattern="*")["ok"]
    assert sum(stats(rt)["rejected"].values()) == len(BAD) + 2


def test_config_subscriptions_are_counted_apart_from_service_subscribers(rt: NodeRuntime) -> None:
    gate: SubscriptionGate = rt.gate
    topic = config_topic(ConfigKey("public", "DEFAULT_GROUP", "app.yaml"))
    assert stats(rt)["subscribers"] == 0
    assert gate.subscribe(topic, True) is None
    assert gate.subscribe(topic, True) is None  # two clients listen to it
    assert gate.subscribe(b"public\x00DEFAULT_GROUP\x00orders\x00", True) is None  # a service
    assert gate.subscribe(config_topic(ConfigKey("public", "g", "x")), False) == "denied"
    assert (stats(rt)["subscribers"], gate.total) == (2, 3)
    assert gate.unsubscribe(topic) is True
    assert gate.unsubscribe(config_topic(ConfigKey("public", "g", "x"))) is False  # refused one
    assert (stats(rt)["subscribers"], gate.total) == (1, 2)


def test_every_config_get_is_counted_in_requests_the_fast_ones_too(rt: NodeRuntime) -> None:
    """review37 F3: a get of a version read before is answered by ConfigPlane.fast_get,
    which skipped the count: 50 gets grew ``stats.requests.config_get`` by 1."""
    publish = encode_request("config_publish", 1, data_id="c", content="x")
    assert rt._serve([b"client-1", b"", publish], START) is None  # answered once committed
    rt.configs.flush(START)
    for _ in range(5):
        assert call(rt, "config_get", data_id="c")["ok"]
    requests = call(rt, "stats")["result"]["requests"]
    assert requests["config_get"] == 5 and requests["config_publish"] == 1
    assert rt.configs.fast_gets == 4  # the fast path answered all but the first
