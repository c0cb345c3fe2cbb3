"""review37 F1: a tenant confined to its own namespace silences another tenant's watch
pushes.  It fills the node's table of refused topics (100,000 distinct refused
subscriptions: any invalid topic will do, no ACL right needed), subscribes on the same
connection to the victim's service topic (refused, and now not remembered), and closes
the connection.  libzmq makes up an unsubscription (no sender) for every topic the
connection sent, the victim's included; the gate finds no refused count for it and takes
the victim's *admitted* one instead (runtime/subscription_gate.py ``unsubscribe``: "no
sender: a refused one first", else admitted).  The node then believes nobody watches the
service (stats subscribers 0, watched_services 0) and stops publishing its changes:
the victim's subscriber, still connected and subscribed in libzmq, gets nothing, and a
Python Client watching it learns changes only at its 10 s resync (by hand: push latency
4 ms before, 8.7 s and 10.0 s after).

SECURITY.md: "Each subscription is still checked (a valid topic the key may read ...)"
and "A subscriber therefore receives only what it may read"; subscription_gate's own
rule: "a wrong match can only leave a topic counted as watched a little longer ...
never make a watched topic look unwatched".
"""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest
import zmq
from r37lib import HOST, TENANTS_ACL, RawDealer, keyed_node, make_keys, reply_text, wait_until

TOPIC = b"nsB\0DEFAULT_GROUP\0pay\0"
FILL = 100_010  # above the gate's MAX_REFUSED_TOPICS (100,000)


def _sub(keys: dict, who: str, port: int) -> zmq.Socket:
    s = zmq.Context.instance().socket(zmq.SUB)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.SNDHWM, 0)  # send every subscription (the default HWM drops some)
    s.curve_publickey, s.curve_secretkey, s.curve_serverkey = keys[who]
    s.connect(f"tcp://{HOST}:{port + 1}")
    return s


def _drain(s: zmq.Socket, quiet_ms: int = 300) -> int:
    n = 0
    while s.poll(quiet_ms):
        s.recv_multipart()
        n += 1
    return n


@pytest.mark.timeout(120)
def test_another_tenant_cannot_unsubscribe_my_watch(tmp_path: Path) -> None:
    keys = make_keys(tmp_path, "tenantA", "tenantB", "ops")
    node = keyed_node(tmp_path, TENANTS_ACL, keys)
    victim = attacker = None
    b = ops = None
    try:
        node.start()
        b = RawDealer(node.port, keys["tenantB"])
        ops = RawDealer(node.port, keys["ops"])
        r = b.call("register", namespace="nsB", service="pay", ip="10.2.2.2", port=80)
        assert r["ok"], reply_text(r)
        victim = _sub(keys, "tenantB", node.port)
        victim.setsockopt(zmq.SUBSCRIBE, TOPIC)
        assert victim.poll(10_000), "the victim's subscription got no sync"
        _drain(victim)

        def stats() -> dict:
            r = ops.call("stats")
            assert r["ok"], reply_text(r)
            return r["result"]

        assert stats()["subscribers"] == 1

        attacker = _sub(keys, "tenantA", node.port)
        for i in range(FILL):
            attacker.setsockopt(zmq.SUBSCRIBE, b"junk%06d" % i)
        attacker.setsockopt(zmq.SUBSCRIBE, TOPIC)  # refused (ACL), and not remembered
        wait_until(
            lambda: stats()["subscriptions_refused"]["denied"] >= 1, 60, 0.5,
            what="the attacker's subscriptions to be read",
        )
        attacker.close()
        attacker = None
        wait_until(
            lambda: stats()["subscriptions_refused"]["invalid"] >= FILL, 10, 0.2,
            what="the attacker's junk subscriptions counted",
        )
        # every change to the victim's service within the next 5 s must reach its
        # subscriber (the closed connection's made-up unsubscriptions drain meanwhile)
        for port in range(81, 91):
            r = b.call("register", namespace="nsB", service="pay", ip="10.2.2.2", port=port)
            assert r["ok"], reply_text(r)
            if not victim.poll(2_000):
                st = stats()
                raise AssertionError(
                    f"tenant B's subscriber (still connected, still subscribed) got no "
                    f"notification of its change #{port - 80} to its own service within 2 s, "
                    f"after tenant A closed a connection; node stats: subscribers "
                    f"{st['subscribers']}, watched_services {st['watched_services']} (were 1)"
                )
            frames = victim.recv_multipart()
            assert frames[0] == TOPIC, frames[0]
            assert msgpack.unpackb(frames[-1], raw=False)
            _drain(victim, 100)
    finally:
        for s in (victim, attacker):
            if s is not None:
                s.close()
        for d in (b, ops):
            if d is not None:
                d.close()
        node.cleanup()
