"""review24 F9: one restart of a consumer's server logs a WARNING per watched service.

README, The node: logs are rate-limited "once per error kind and client per 10 s, with a
count of the suppressed ones"; client/session.py "Logging": "Problems are logged at most
once per kind and server per LOG_INTERVAL ... never once per instance".  But the kinds
of the empty-protection warnings are keyed by *service*, so a routine event -- the
consumer's server restarts (a rolling restart), and every watched service comes back
empty or young from it for a moment -- logs one WARNING per service in every consumer
("answered an empty list; keeping the last list until a fresh query confirms it",
"started 0.2s ago and lists nothing yet; ...").  A consumer watching 500 services logged
248 lines for one restart in the lab; nothing was wrong (the guards worked).
"""

from __future__ import annotations

import logging

import pytest
from helpers import wait_until
from r24lib import all_up, cluster, ready

from meshreg import Client

N = 200


@pytest.mark.timeout(120)
def test_one_server_restart_logs_a_few_lines_not_one_per_service(tmp_path, caplog) -> None:
    nodes = cluster(3, str(tmp_path))
    a, b, c = nodes
    prov = cons = None
    try:
        wait_until(lambda: all_up(nodes), 20, 0.1, "3 members up")
        prov = Client([b.address, c.address])
        prov.register_many([{"service": f"f{i}", "ip": "10.21.0.1", "port": 80} for i in range(N)])
        cons = Client([n.address for n in nodes], server_order="listed")
        assert cons.server == a.address
        seen: set[str] = set()
        for i in range(N):
            cons.subscribe(f"f{i}", lambda xs, s=f"f{i}": seen.add(s) if xs else None)
        wait_until(lambda: len(seen) == N, 30, 0.05, "every service seen")
        before = {cons.instances(f"f{i}").epoch for i in range(N)}
        with caplog.at_level(logging.INFO, logger="meshreg.client"):
            caplog.clear()
            assert a.stop() == 0
            a.start()
            wait_until(lambda: ready(a), 15, 0.05, "A ready again")
            # every watched service pulled again since (from the restarted node, or from
            # the node the consumer moved to meanwhile): each view has another epoch
            wait_until(
                lambda: all(
                    len(v) == 1 and v.epoch not in before
                    for v in (cons.instances(f"f{i}") for i in range(N))
                ),
                20,
                0.1,
                "every view pulled again after the restart",
            )
            try:  # grouped lines are flushed within a second or so; there may be none
                wait_until(lambda: len(caplog.records) > 0, 3, 0.05, "some log line")
            except AssertionError:
                pass
            warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) <= 20, (
            f"one restart of the consumer's server logged {len(warnings)} WARNING lines for "
            f"{N} watched services (nothing went wrong); e.g. {warnings[:2]}"
        )
    finally:
        for cl in (cons, prov):
            if cl is not None:
                cl.close(timeout=5)
        for n in nodes:
            n.cleanup()
