"""review27 F8: while one member is dead (crashed, waiting for its replacement: hours,
maybe), every client that starts with the usual full server list (`MESHREG_SERVERS`,
`-s a,b,c`) waits out its attempt timeout on the dead one first: 1 s per read, 2.5 s of
its 3 s budget per config write, although the connection is refused at once.

Measured (/tmp/r27/deadfirst.py; loopback, so the refusal is immediate): with the dead
node first in `-s`, `meshreg instances` 1.25 s (0.24 s without it), `config get` 1.24 s
(0.26), `config publish` 2.74 s (0.27), `stats` 1.24 s, `ping` 1.24 s; this test,
fresh Clients once the survivors see it down: config_get 1.00 s, config_publish 2.51 s.
Every cron job, health check and application start pays it; with F3 (everyone lists
the same first node) that is the whole fleet when the first node is the dead one.

Cause: the client's loop sees the connection refused (client/agent.py ``_dealer_events``
-> session.py ``server_refused`` / ``server_disconnected``) but the request waits in
libzmq for a handshake that never completes until ``attempt_timeout``; nothing moves it
to the next server when the connection is known down.

Expected (Nacos's client, etcd's clientv3: a refused connection fails over at once): a
call costs milliseconds more when a listed member refuses connections.
"""

from __future__ import annotations

import time

import pytest
from r27lib import all_ready, cluster, req, wait_until

from meshreg import Client


@pytest.mark.timeout(90)
def test_a_new_client_skips_a_dead_member_quickly(tmp_path) -> None:
    nodes = cluster(3, str(tmp_path))
    try:
        wait_until(lambda: all_ready(nodes), 30, 0.1, "3 members up and ready")
        servers = [n.address for n in nodes]
        setup = Client(servers[1:], handle_sigterm=False)
        setup.config_publish("app.yaml", "a: 1\n")
        setup.close(timeout=1)
        nodes[0].kill()  # dead: its port refuses connections

        def survivors_see_it_down() -> bool:
            for n in nodes[1:]:
                r = req(n, "cluster")
                if not r or not r.get("ok"):
                    return False
                states = {m.get("address"): m.get("state") for m in r["result"]["members"]}
                if states.get(nodes[0].address) != "down":
                    return False
            return True

        wait_until(survivors_see_it_down, 15, 0.1, "the survivors see the dead member down")
        took = {}
        for op in ("config_get", "config_publish"):
            c = Client(servers, handle_sigterm=False)  # a new process: the usual list
            try:
                t0 = time.monotonic()
                if op == "config_get":
                    c.config_get("app.yaml")
                else:
                    c.config_publish("app.yaml", "a: 2\n")
                took[op] = round(time.monotonic() - t0, 3)
            finally:
                c.close(timeout=1)
        assert max(took.values()) < 0.5, (
            f"a new client whose list starts with a dead member (connection refused): {took}"
        )
    finally:
        for n in nodes:
            n.cleanup()
