"""review64 F1 (high, multi-tenant starvation): one tenant's key fills the node-wide
128 MiB budget of large replies with connections that do not read, and from then on the
node drops every other tenant's replies above 64 KiB (a 200 KB config, the instance list
of a large service) for as long as those connections stay open.

docs/SECURITY.md "Replies a client does not read": a connection may hold 8 MiB of large
replies and "all connections together 128 MiB"; "A reply that would go beyond the node's
budget is dropped".  The per-connection budget stops one connection; nothing stops one
key from opening 17+ of them (the number of connections a key opens is not bounded), and
no timer ends a request connection that does not read (the 20 s cut-off is for the
notification port).  Seen by hand on a 3-node keyed cluster: team-a, admin of its own
namespace only, opened 28 DEALER connections (RCVHWM 1, RCVBUF 4 KiB) and sent 688
`config_get`s of its own 1 MB and 70 KB configs; the node held 134,190,710 bytes; team-b's
`config_get` of its own 200 KB config got no reply, the Python client raised
ServerUnreachableError "... did not answer: it may be stopped, overloaded or waiting on
its peers" on every try for 30 s, until team-a closed its sockets.

Expected (Nacos/Consul tenant): a noisy or stuck tenant loses its own replies; other
tenants' reads are served.  A share of the node budget per key (as the sessions' share)
would do it.
"""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest
import zmq
from helpers import RawDealer, wait_until

from .r64lib import admin_stats, curve, tenant_nodes

pytestmark = pytest.mark.timeout(150)
NODE_BUDGET = 128 * 1024 * 1024  # transport/replies.py CLIENT_NODE_BYTES


def _stuck_connection(
    port: int, keys: tuple[bytes, bytes, bytes], data_id: str, n: int
) -> zmq.Socket:
    """A team-a connection that sends ``n`` config_gets and never reads a reply."""
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVHWM, 1)
    s.setsockopt(zmq.RCVBUF, 4096)
    s.curve_publickey, s.curve_secretkey, s.curve_serverkey = keys
    s.connect(f"tcp://127.0.0.1:{port}")
    for k in range(n):
        body = {"v": 1, "id": k + 1, "op": "config_get", "namespace": "team-a", "data_id": data_id}
        s.send_multipart([b"", msgpack.packb(body)])
    return s


def test_one_tenant_cannot_make_the_node_drop_another_tenants_replies(tmp_path: Path) -> None:
    (node,) = tenant_nodes(tmp_path, 1)
    socks: list[zmq.Socket] = []
    a = RawDealer(node.port, curve(tmp_path, "team-a"))
    b = RawDealer(node.port, curve(tmp_path, "team-b"))
    try:
        for dealer, ns, data_id, size in ((a, "team-a", "big", 1_000_000),
                                          (a, "team-a", "fill", 70_000),
                                          (b, "team-b", "mid", 400_000)):  # fmt: skip
            r = dealer.call("config_publish", 20, namespace=ns, data_id=data_id, content="x" * size)
            assert r["ok"], r
        assert b.call("config_get", namespace="team-b", data_id="mid")["ok"]  # served before

        keys_a = curve(tmp_path, "team-a")

        def held() -> int:
            return int(admin_stats(tmp_path, node)["replies"]["held_bytes"])

        def settled() -> int:
            """held_bytes once it stops moving (the kernel takes the first MBs of each
            connection, at its own pace): the same in two reads 0.5 s apart (<= 20 s)."""
            reads = [-1]

            def same_twice() -> bool:
                reads.append(held())
                return reads[-1] == reads[-2]

            wait_until(same_twice, 20, 0.5, "held_bytes to settle")
            return reads[-1]

        socks += [_stuck_connection(node.port, keys_a, "big", 12) for _ in range(24)]
        wait_until(lambda: held() > NODE_BUDGET // 2, 30, 0.2, "team-a's unread replies held")
        # then 70 KB replies, a connection at a time, until less room is left than
        # team-b's reply needs (bounded: at most 12 more connections)
        for _ in range(12):
            if settled() > NODE_BUDGET - 350_000:
                break
            socks.append(_stuck_connection(node.port, keys_a, "fill", 120))
        # the attack is real: team-a holds many connections' budgets (8 MiB each), and
        # more would have gone (before the fix: the whole node budget, to 350 KB)
        assert settled() > NODE_BUDGET // 2, admin_stats(tmp_path, node)["replies"]

        answered = 0
        for _ in range(3):
            b.send("config_get", namespace="team-b", data_id="mid")
            try:
                answered += bool(b.replies(1, 3.0)[0]["ok"])
            except AssertionError:
                pass
        replies = admin_stats(tmp_path, node)["replies"]
        assert answered == 3, (
            f"team-b's config_get of its own 400 KB config: {answered} of 3 answered within 3 s "
            f"each while team-a ({len(socks)} connections that do not read, its own namespace "
            f"only) holds the node's large-reply budget: {replies}"
        )
        # team-a was held to its bound (3/4 of the budget alone; one reply past it at most:
        # the reply of a request served under it, with the copies before it), its
        # connections paced (their requests wait) or its unpaced replies dropped
        assert replies["held_bytes"] <= NODE_BUDGET * 3 // 4 + 1_300_000, replies
        assert replies["dropped_share"] > 0 or replies["blocked"] > 0, replies
        if replies["dropped_share"]:
            wait_until(lambda: "client 'team-a'" in node.log(), 5, 0.1, "the warning")
    finally:
        for s in socks:
            s.close()
        a.close()
        b.close()
        node.cleanup()
