"""review27 F6: lowering `unhealthy_after` on a live cluster (a rolling restart with the
new value: SIGHUP does not apply it, F5) makes every running provider's session
instances flap unhealthy on every node, for as long as those providers run.

A session client learns the node's ``unhealthy_after`` when its session opens
(client/session.py ``_learn_timings``, called from the session_open reply and a retried
open; a ``session_renew`` reply carries no timings) and renews every ``beat_interval``
(5 s) unless told less.  After the roll to ``--unhealthy-after 3`` its renewals still
come every 5 s, so each owner node marks its instances unhealthy 3 s after every renewal
and the next renewal heals them: unhealthy about 40% of the time, replicated to every
node and pushed to every consumer.  Measured (/work/notes/review27.md): 6 services of one
provider, polled 4x/s on each node for 25 s after the roll: 393 of 600 reads found the
instance missing.  No node warns that the renewals are too slow for its setting, and
nothing says the members' timings differ during the roll.

Expected (Nacos 1.x's beat reply carries ``clientBeatInterval`` and the client follows
it at once; a Consul TTL check belongs to the registering agent): after the roll, live
providers keep their instances healthy; the nodes tell sessions their timing in the
renewal replies (or the client pings for it, as beat clients do).
"""

from __future__ import annotations

import pytest
from helpers import holds_for
from r27lib import all_ready, cluster, req, wait_until

from meshreg import Client

NEW = ("--unhealthy-after", "3", "--check-interval", "0.5")


@pytest.mark.timeout(150)
def test_live_sessions_stay_healthy_after_unhealthy_after_is_lowered(tmp_path) -> None:
    nodes = cluster(3, str(tmp_path))
    provider = Client([n.address for n in nodes], handle_sigterm=False)
    try:
        wait_until(lambda: all_ready(nodes), 30, 0.1, "3 members up and ready")
        services = [f"svc{k}" for k in range(6)]  # spread over the three owners
        for k, s in enumerate(services):
            provider.register(s, "10.0.0.1", 8000 + k)
        for n in nodes:  # the README's rolling restart, with the new setting
            assert n.stop() == 0
            n.extra = (*NEW, *n.extra)
            n.start(30)
            wait_until(lambda: all_ready(nodes), 60, 0.1, "ready again after the restart")

        def all_healthy() -> bool:
            for n in nodes:
                for s in services:
                    r = req(n, "instances", namespace="public", group="DEFAULT_GROUP",
                            service=s, healthy_only=True)  # fmt: skip
                    if r and r.get("ok") and not r["result"]["instances"]:
                        return False
            return True

        holds_for(
            all_healthy,
            12.0,
            0.2,
            "every instance of a live provider (renewing its session) stays healthy on "
            "every node after the roll to --unhealthy-after 3",
        )
    finally:
        provider.close(timeout=1)
        for n in nodes:
            n.cleanup()
