"""review29 F2: one connection with read access to one service, subscribing and
unsubscribing its topic in a loop, makes the node publish a sync to *every* subscriber of
that service per subscription: tens of thousands of notifications per watcher in seconds,
their queues full (notifications sent lossy: real changes lost), the node's loop busy.

PROTOCOL.md 4.2: "A sync is published on the service's topic, so every subscriber of
that service gets it, not only the new one"; SECURITY.md: "each subscriber's queue is
bounded"; "a connection that repeats a topic (200,000 times, say) holds one subscription
... they get no sync" - but a subscribe after an unsubscribe is not a repeat. Nothing
bounds how often one connection may trigger a sync, and nothing is logged.
By hand (/tmp/r29/sync_amp.py, 50 watchers, 10 s): 2.3 M notifications delivered for 0
changes, 140,958 sent lossy, node CPU 87%, beat p99 0.9 -> 101 ms; a Python Client
watching the service saw its changes p50 223 ms / p90 2.9 s late (1-2 ms without).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import zmq
from r29lib import RawDealer, keyed_node, make_keys, reply_text

ACL = """
[[client]]
name = "evil"
key_file = "evil.pub"
allow = [{ namespace = "public", service = "orders", access = "read" }]
[[client]]
name = "app"
key_file = "app.pub"
allow = [{ namespace = "public", access = "write" }]
"""
WATCHERS = 20
ATTACK_S = 6.0
TOPIC = b"public\0DEFAULT_GROUP\0orders\0"


@pytest.mark.timeout(90)
def test_one_connection_cannot_make_every_watcher_receive_thousands_of_syncs(
    tmp_path: Path,
) -> None:
    keys = make_keys(tmp_path, "evil", "app")
    node = keyed_node(tmp_path, ACL, keys)
    ctx = zmq.Context.instance()
    watchers: list[zmq.Socket[bytes]] = []
    app = None
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        node.start()
        app = RawDealer(node.port, keys["app"])
        r = app.call("register", service="orders", ip="10.0.0.1", port=80)
        assert r["ok"], reply_text(r)
        for _ in range(WATCHERS):
            s = ctx.socket(zmq.SUB)
            s.setsockopt(zmq.LINGER, 0)
            s.curve_publickey, s.curve_secretkey, s.curve_serverkey = keys["app"]
            s.connect(f"tcp://127.0.0.1:{node.port + 1}")
            s.setsockopt(zmq.SUBSCRIBE, TOPIC)
            watchers.append(s)
        for s in watchers:  # each gets its own subscription's sync (and the others')
            assert s.poll(10_000), "no sync within 10 s of a subscription"
            while s.poll(200):
                s.recv_multipart()
        got = [0] * WATCHERS

        def read_all() -> None:
            poller = zmq.Poller()
            for s in watchers:
                poller.register(s, zmq.POLLIN)
            while not stop.is_set():
                for s, _ in poller.poll(100):
                    while True:
                        try:
                            s.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        got[watchers.index(s)] += 1

        def evil() -> None:
            s = ctx.socket(zmq.XSUB)
            s.setsockopt(zmq.LINGER, 0)
            s.curve_publickey, s.curve_secretkey, s.curve_serverkey = keys["evil"]
            s.connect(f"tcp://127.0.0.1:{node.port + 1}")
            try:
                end = time.monotonic() + ATTACK_S
                while time.monotonic() < end:
                    for _ in range(100):
                        s.send(b"\x01" + TOPIC)  # subscribe
                        s.send(b"\x00" + TOPIC)  # unsubscribe
                    while True:
                        try:
                            s.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                    stop.wait(0.001)
            finally:
                s.close()

        threads = [threading.Thread(target=read_all), threading.Thread(target=evil)]
        for t in threads:
            t.start()
        threads[1].join(ATTACK_S + 10)
        stop.set()
        threads[0].join(5)
        worst = max(got)
        # no change to orders was made meanwhile: what a watcher got was caused by
        # another client's subscriptions. A few syncs are fine; thousands are not.
        assert worst <= 100, (
            f"one read key's subscribe/unsubscribe loop ({ATTACK_S:.0f} s, one connection) made "
            f"each of {WATCHERS} watchers of public/DEFAULT_GROUP/orders receive up to {worst} "
            f"notifications (all {sum(got)}) while the service did not change"
        )
    finally:
        stop.set()
        for t in threads:
            t.join(5)
        for s in watchers:
            s.close()
        if app is not None:
            app.close()
        node.cleanup()


CONFIG_ACL = """
[[client]]
name = "evil"
key_file = "evil.pub"
allow = [{ namespace = "public", group = "g", access = "read" }]
[[client]]
name = "app"
key_file = "app.pub"
allow = [{ namespace = "public", access = "admin" }]
[[client]]
name = "ops"
key_file = "ops.pub"
allow = [{ namespace = "*", access = "read" }]
"""
LISTENERS = 5
CONFIG_TOPIC = b"\0config\0public\0g\0app.yaml\0"


@pytest.mark.timeout(90)
def test_a_config_subscribe_loop_does_not_make_gray_listeners_pull_again_and_again(
    tmp_path: Path,
) -> None:
    """The config variant: an exact config topic's subscription publishes the current
    version's notification to every listener (4.5), and a listener holding a gray version
    pulls on every notification at its revision (4.5: "any, when holding a gray version").
    So one read key's loop turns into config_get pulls of the whole content by every
    listener. By hand (/tmp/r29/config_amp.py: 10 Python listeners, 1000 KiB gray
    content, 8 s): 565 config_get (~565 MB of replies), node CPU 72%, beat latency p50
    0.3 -> 67 ms, p99 4 -> 196 ms."""
    from meshreg.client import Client

    keys = make_keys(tmp_path, "evil", "app", "ops")
    node = keyed_node(tmp_path, CONFIG_ACL, keys)
    ctx = zmq.Context.instance()
    clients: list[Client] = []
    app = ops = None
    try:
        node.start()
        app = RawDealer(node.port, keys["app"])
        ops = RawDealer(node.port, keys["ops"])
        r = app.call("config_publish", group="g", data_id="app.yaml", content="a" * 65536)
        assert r["ok"], reply_text(r)
        r = app.call("config_gray", group="g", data_id="app.yaml", content="b" * 65536,
                     labels={"env": "canary"})  # fmt: skip
        assert r["ok"], reply_text(r)
        for _ in range(LISTENERS):
            c = Client(f"127.0.0.1:{node.port}", key=str(tmp_path / "app.key"),
                       server_key=str(tmp_path / "cluster.pub"),
                       labels={"env": "canary"})  # fmt: skip
            clients.append(c)
            c.config_listen("app.yaml", lambda content, rev: None, group="g")

        def gets() -> int:
            r = ops.call("stats")
            assert r["ok"], reply_text(r)
            return int(r["result"].get("requests", {}).get("config_get", 0))

        before = gets()
        s = ctx.socket(zmq.XSUB)
        s.setsockopt(zmq.LINGER, 0)
        s.curve_publickey, s.curve_secretkey, s.curve_serverkey = keys["evil"]
        s.connect(f"tcp://127.0.0.1:{node.port + 1}")
        try:
            end = time.monotonic() + ATTACK_S
            while time.monotonic() < end:
                for _ in range(100):
                    s.send(b"\x01" + CONFIG_TOPIC)
                    s.send(b"\x00" + CONFIG_TOPIC)
                while True:
                    try:
                        s.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                s.poll(1)  # the next notification to drain, 1 ms at most
        finally:
            s.close()
        pulled = gets() - before
        # the config did not change: a listener has nothing to pull
        assert pulled <= 2 * LISTENERS, (
            f"one read key's subscribe/unsubscribe loop on a config topic ({ATTACK_S:.0f} s) "
            f"made {LISTENERS} listeners pull the unchanged 64 KiB config {pulled} times"
        )
    finally:
        for c in clients:
            c.close()
        for d in (app, ops):
            if d is not None:
                d.close()
        node.cleanup()
