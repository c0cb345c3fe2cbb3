"""review24 F11: a node whose ``unhealthy_after`` is below the clients' beat interval
makes every instance flap healthy/unhealthy, and nothing says why.

README: ``unhealthy_after`` may be set from 0.1 s (node bounds); the client's
``beat_interval`` defaults to 5 s and is chosen by each client. PROTOCOL.md: renew "every
beat interval (5 s; well below ``unhealthy_after``)", and ``session_open`` returns the
node's ``unhealthy_after`` to the client.  An operator who lowers ``unhealthy_after`` for
faster failure detection (say 3 s) turns every default client's instances unhealthy
3.5 s after each renewal, healthy again at the next one: 30% of the time unhealthy,
consumers' lists flapping.  The Python client receives ``unhealthy_after`` in the
``session_open`` reply and ignores it: it neither renews faster nor warns; the node logs
only INFO "unhealthy ..." lines.  Nacos's server returns ``clientBeatInterval`` and the
client adapts; Consul/etcd clients set their own TTL.
"""

from __future__ import annotations

import logging

import pytest
from helpers import NodeProcess, holds_for, wait_until
from r24lib import req

from meshreg import Client


def healthy(node: NodeProcess) -> bool:
    r = req(node, "instances", service="flap", healthy_only=False)
    return bool(r and r.get("ok") and [i["healthy"] for i in r["result"]["instances"]] == [True])


@pytest.mark.timeout(60)
def test_default_client_against_a_short_unhealthy_after(tmp_path, caplog) -> None:
    node = NodeProcess("--check-interval", "0.2", "--unhealthy-after", "3", "--evict-after", "30",
                       "--data-dir", str(tmp_path / "d"))  # fmt: skip
    prov = None
    try:
        node.start()
        with caplog.at_level(logging.INFO, logger="meshreg"):
            prov = Client([node.address])  # default beat_interval: 5 s
            prov.register("flap", "10.25.0.1", 80)
            wait_until(lambda: healthy(node), 5, 0.05, "healthy after registering")
            try:
                holds_for(lambda: healthy(node), 8.0, 0.1, "the instance stays healthy")
                flapped = None
            except AssertionError as exc:
                flapped = str(exc)
        said = [
            r.getMessage()
            for r in caplog.records
            if r.levelno >= logging.WARNING and "unhealthy_after" in r.getMessage()
        ]
        assert flapped is None or said, (
            f"a default client (beat 5 s) against a node with unhealthy_after 3 s: {flapped}; "
            "the client logged no warning about the mismatch (session_open told it 3 s)"
        )
    finally:
        if prov is not None:
            prov.close(timeout=3)
        node.cleanup()
