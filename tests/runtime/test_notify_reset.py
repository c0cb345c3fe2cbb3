"""review37 F1: the subscription gate remembers every refused subscription of a valid
topic (so libzmq's sender-less unsubscriptions never end another connection's admitted
one); past ``MAX_REFUSED`` of them held, the runtime bounds that memory by dropping every
notification connection, at most once per ``OVERFLOW_RESET_EVERY``.  A NodeRuntime with
a fake XPUB and transport, on a fake clock."""

from __future__ import annotations

from typing import Any

import pytest
import zmq

from meshreg.config import NodeConfig
from meshreg.runtime import subscription_gate
from meshreg.runtime.node import OVERFLOW_RESET_EVERY, NodeRuntime

START = 1764547200.0


class Frame:
    def __init__(self, body: bytes, user: str | None) -> None:
        self.bytes, self.user = body, user

    def get(self, name: str) -> str:
        if self.user is None:
            raise zmq.ZMQError(zmq.EINVAL)
        return self.user


class FakeXpub:
    def __init__(self) -> None:
        self.frames: list[Frame] = []

    def recv(self, flags: int = 0, copy: bool = True) -> Frame:
        if not self.frames:
            raise zmq.Again()
        return self.frames.pop(0)

    def setsockopt(self, option: int, value: Any) -> None:
        pass


class FakeTransport:
    resets = 0

    def reset_notifications(self) -> None:
        self.resets += 1

    def stats(self) -> dict[str, int]:
        return {}


def test_too_many_refused_subscriptions_held_drop_the_notification_connections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(subscription_gate, "MAX_REFUSED", 3)
    now = [START]
    rt = NodeRuntime(NodeConfig(host="127.0.0.1", port=7800), clock=lambda: now[0], epoch=1)
    transport = FakeTransport()
    rt.transport = transport  # type: ignore[assignment]
    rt.gate.max_subscriptions = 0  # every valid topic refused (full): held by libzmq
    xpub = FakeXpub()

    def drain(*frames: Frame) -> None:
        xpub.frames.extend(frames)
        rt._drain_subscriptions(xpub)  # type: ignore[arg-type]

    drain(*(Frame(b"\x01ns%d\x00" % i, ";1") for i in range(4)))
    assert rt.gate.refused_held == 4 and rt.gate.overflowing
    assert transport.resets == 1 and rt._runtime_stats()["notification_resets"] == 1
    drain()  # still over (the unsubscriptions have not come): once per interval
    assert transport.resets == 1
    now[0] += OVERFLOW_RESET_EVERY
    drain(*(Frame(b"\x00ns%d\x00" % i, None) for i in range(4)))  # libzmq's, closed
    assert transport.resets == 1 and rt.gate.refused_held == 0
    assert rt._runtime_stats()["subscriptions_refused_held"] == 0
