"""A consumer whose subscription the node refused is told (review14b F5, in part).

The node holds at most 200,000 subscriptions, one pool for every client; one connection
can fill it (review14b: 2.5 s), and from then on every other consumer's subscription is
refused without a word to it: its callbacks see changes only at its resync (10 s).  The
node answers a subscription it admits with a push at once, so the client now says when
none came (``SUBSCRIPTION_CONFIRM``).  What is still open: a share per client, so that
one cannot take the pool (docs/SECURITY.md "Limits per client")."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
import zmq
from helpers import HOST, NodeProcess, raw_request, wait_until

from meshreg import Client
from meshreg.client.session import SUBSCRIPTION_CONFIRM
from meshreg.runtime.subscription_gate import DEFAULT_MAX_SUBSCRIPTIONS

pytestmark = pytest.mark.timeout(120)


def test_a_consumer_whose_subscription_was_refused_is_told(
    start_node: Callable[..., NodeProcess], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="meshreg.client")
    node = start_node()
    fill = DEFAULT_MAX_SUBSCRIPTIONS + 100
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SNDHWM, 0)  # let every subscription out
    sub.setsockopt(zmq.RCVHWM, 10)
    try:
        with Client([node.address]) as admitted:
            seen: list[int] = []
            admitted.subscribe("orders", lambda xs: seen.append(len(xs)))
            wait_until(lambda: seen, 5, what="the first callback")
            # the pool is filled by another connection
            sub.connect(f"tcp://{HOST}:{node.port + 1}")
            for i in range(fill):
                sub.setsockopt(zmq.SUBSCRIBE, f"public\x00G\x00s{i}\x00".encode())

            def handled() -> bool:
                st = raw_request(node.port, {"v": 1, "id": 1, "op": "stats"})["result"]
                refused = st["subscriptions_refused"]
                return bool(
                    st["subscriptions_admitted"] + refused["full"] + refused["share"] >= fill
                )

            wait_until(handled, 60, interval=0.5, what="the filler's subscriptions handled")
            with Client([node.address]) as refused:
                refused.subscribe("payments", lambda xs: None)

                def told() -> list[str]:
                    return [
                        r.getMessage()
                        for r in caplog.records
                        if "may have refused" in r.getMessage()
                    ]

                said = wait_until(told, SUBSCRIPTION_CONFIRM + 10, what="the refusal said")
            # only the refused consumer's watch is named: the admitted one got its push
            assert len(said) == 1 and "payments" in said[0] and "orders" not in said[0], said
            assert node.address in said[0] and "subscriptions_refused" in said[0]
            # the filler's namespace took three quarters: another tenant's watch is admitted
            # and pushed to (its resync is 10 s away), not refused (review of 2026-12-07)
            st = raw_request(node.port, {"v": 1, "id": 1, "op": "stats"})["result"]
            assert st["subscriptions_refused"]["share"] > 0, st["subscriptions_refused"]
            with Client([node.address], namespace="team-b") as other, Client(
                [node.address], namespace="team-b"
            ) as provider:
                lists: list[int] = []
                other.subscribe("orders", lambda xs: lists.append(len(xs)))
                wait_until(lambda: lists, 5, what="team-b's first callback")
                provider.register("orders", "10.0.0.9", 8080)
                wait_until(lambda: lists[-1] == 1, 5, what="team-b's push")
            assert not [m for m in told() if "team-b" in m], told()
    finally:
        sub.close()
