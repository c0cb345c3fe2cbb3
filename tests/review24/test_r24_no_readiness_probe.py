"""review24 F12: nothing tells a rolling-restart script (or systemd, or a Kubernetes
readiness probe) that a restarted node has caught up.

README "A cluster": restart nodes "one by one"; a restarted node "catches up from its
peers (`meshreg cluster` shows `catching up`)".  The unit is ``Type=simple`` (systemd
counts the node started as soon as it is forked), so `systemctl restart` of the next node
follows at once; `meshreg ping` -- the one health-check command -- answers "pong" with
exit 0 from a node that is still catching up (and that serves empty lists meanwhile,
F8).  etcd has /health (false until it can serve), Consul /v1/status/leader, Nacos
/v1/console/health/readiness.  Expected: `meshreg ping` fails (or says so) while the node
is not ready, or a documented `--ready` check / sd_notify READY after catch-up.
"""

from __future__ import annotations

import pytest
from helpers import run_cli, wait_until
from r24lib import all_up, cluster, ready


@pytest.mark.timeout(90)
def test_ping_of_a_catching_up_node_is_not_plain_success(tmp_path) -> None:
    timings = ("--check-interval", "0.2", "--unhealthy-after", "3", "--evict-after", "6",
               "--peer-timeout", "3")  # fmt: skip
    nodes = cluster(3, str(tmp_path), timings)
    a, b, _c = nodes
    try:
        wait_until(lambda: all_up(nodes), 20, 0.1, "3 members up")
        assert b.stop() == 0
        assert a.stop() == 0
        a.start()
        assert not ready(a), "the test needs A still catching up here"
        out = run_cli("ping", "-s", a.address)
        still = not ready(a)
        assert out.returncode != 0 or "catching up" in (out.stdout + out.stderr), (
            f"`meshreg ping -s {a.address}` on a node still catching up (still after the "
            f"ping: {still}) printed {out.stdout.strip()!r}, exit {out.returncode}"
        )
    finally:
        for n in nodes:
            n.cleanup()
