"""review24 F8: a node that is still catching up answers `meshreg instances` with an empty
list and exit status 0, saying nothing.

Rolling restart, as README "A cluster" describes it: "Start it again: it catches up from
its peers (`meshreg cluster` shows `catching up`)".  An operator (or any client not
written in Python, following PROTOCOL.md) that reads from the node in that window gets
"no instances" for a service whose provider never stopped: the CLI prints nothing and
exits 0.  The Python client hides it with its young-node guard; the CLI, a one-shot
client, has no earlier list to keep.  Nacos answers 503 "server is STARTING now, please
try again later" until its Distro data is loaded; a read from a catching-up node should
at least be refused (UNAVAILABLE, so the client asks the next server) or flagged.
Here B is stopped, A restarted: A waits `peer_timeout` for silent B before it is ready.
"""

from __future__ import annotations

import pytest
from helpers import run_cli, wait_until
from r24lib import addresses, all_up, cluster, ready

from meshreg import Client


@pytest.mark.timeout(90)
def test_a_read_from_a_catching_up_node_is_not_an_empty_answer(tmp_path) -> None:
    peer_timeout = (
        "--check-interval",
        "0.2",
        "--unhealthy-after",
        "3",
        "--evict-after",
        "6",
        "--peer-timeout",
        "3",
    )  # fmt: skip  (the default peer timeout)
    nodes = cluster(3, str(tmp_path), peer_timeout)
    a, b, c = nodes
    prov = None
    try:
        wait_until(lambda: all_up(nodes), 20, 0.1, "3 members up")
        prov = Client([c.address], beat_interval=0.5)
        prov.register("orders", "10.5.0.1", 80)
        wait_until(lambda: all(addresses(n, "orders") == ["10.5.0.1:80"] for n in nodes),
                   10, 0.05, "listed everywhere")  # fmt: skip
        assert b.stop() == 0
        assert a.stop() == 0
        a.start()
        assert not ready(a), "the test needs A still catching up here"
        out = run_cli("instances", "orders", "-s", a.address)
        was_ready = ready(a)
        # a consumer process starting now, given every server (A first, as in a config)
        fresh = Client([a.address, b.address, c.address])
        try:
            fresh_seen = [i.address for i in fresh.instances("orders")]
        finally:
            fresh.close(timeout=3)
        assert fresh_seen == ["10.5.0.1:80"], (
            f"a new consumer Client([A, B, C]) started while A catches up got {fresh_seen} "
            f"for 'orders' (provider alive; CLI got {out.stdout!r}, rc {out.returncode})"
        )
        assert out.returncode != 0 or "10.5.0.1:80" in out.stdout, (
            f"`meshreg instances orders -s {a.address}` on the restarted node (catching up; "
            f"ready right after the read: {was_ready}) printed {out.stdout!r} and exited "
            f"{out.returncode}, stderr {out.stderr.strip()!r}, while the provider never stopped"
        )
    finally:
        if prov is not None:
            prov.close(timeout=3)
        for n in nodes:
            n.cleanup()
