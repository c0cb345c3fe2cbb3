"""A client key removed from the ACL (and the node reloaded with SIGHUP) keeps
receiving every change of the services it had subscribed to, on the notification
connection it opened before the revocation, for as long as that connection lasts.

docs/SECURITY.md, Reloading: "A good file replaces the ACL at once: every later request
and subscription is checked against it, including those on connections already open";
Rotating keys: "A leaked client key: remove it from the ACL and reload; nothing else is
needed."  README: "a removed key loses access at its next request".  By hand
(the outside review, review12): after the reload a new SUB with the key gets nothing, its
requests get PERMISSION_DENIED, but the SUB opened before keeps getting deltas.

Expected: after the reload, nothing more reaches the revoked key (its admitted
subscriptions dropped, or its connections closed).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import msgpack
import pytest
import zmq
from helpers import HOST, NodeProcess, wait_until
from test_security import WRITE_ORDERS, Keys

pytestmark = pytest.mark.timeout(60)

TOPIC = b"public\x00DEFAULT_GROUP\x00orders\x00"


def _without_reader(acl: str) -> str:
    """The test ACL with the 'reader' entry removed (the leaked key)."""
    head, sep, reader = acl.partition('[[client]]\nname = "reader"')
    assert sep, "the test ACL has a reader entry"
    return head


def test_a_revoked_key_receives_no_more_pushes(
    tmp_path: Path, start_node: Callable[..., NodeProcess]
) -> None:
    keys = Keys(tmp_path)
    node = start_node(
        "--key", keys.key("cluster"), "--acl", str(keys.acl), curve=keys.curve("cluster")
    )
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.curve_publickey, sub.curve_secretkey, sub.curve_serverkey = keys.curve("reader")
    sub.connect(f"tcp://{HOST}:{node.port + 1}")
    try:
        sub.setsockopt(zmq.SUBSCRIBE, TOPIC)
        assert sub.poll(5000), "the reader's subscription is answered with a sync"
        sub.recv_multipart()
        keys.acl.write_text(_without_reader(WRITE_ORDERS))  # the reader's key leaked
        node.signal(signal.SIGHUP)
        wait_until(lambda: "reload: ACL" in node.log(), 5.0, what="the reload log line")
        with keys.client("app", node.address) as app:
            app.register("orders", "10.0.0.9", 8080)
            leaked = []
            if sub.poll(2000):
                _topic, body = sub.recv_multipart()
                leaked.append(msgpack.unpackb(body, raw=False))
            assert not leaked, (
                f"the revoked key still receives the changes of 'orders' after the reload: "
                f"{[(m.get('kind'), m.get('upsert')) for m in leaked]}"
            )
    finally:
        sub.close()
