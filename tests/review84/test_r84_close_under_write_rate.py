"""review84 F2: under ``[limits] write_rate_per_client``, ``close()`` of a client without a
session leaves about half of its instances registered (healthy, served to consumers)
until the nodes evict them as silent.

``close()`` deregisters each instance (one ``deregister`` each, a write the rate counts)
within the client's ``timeout`` (3 s by default); past the burst, each waits its
retry_after, and what the budget does not cover is logged ("could not deregister ... on
close", one WARNING per instance) and left.  In the review (2,000 instances, 200/s):
954 still registered after close; the docs say nothing of close() under the write rate
(a client whose session was refused falls back to per-instance registrations too).

Here 1,000 instances at 100 writes/s (burst 200).  Expected: close() leaves none
registered (it may take longer, or say how long it needs), as without the limit."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import NodeProcess
from r84lib import Lines, count, instances, limited_config

from meshreg import Client

pytestmark = pytest.mark.timeout(120)

N, RATE = 1_000, 100


def test_close_deregisters_every_instance_under_the_write_rate(tmp_path: Path) -> None:
    node = NodeProcess("--config", limited_config(tmp_path, RATE))
    try:
        node.start()
        client = Client(node.address, timeout=3.0, sessions=False)
        failed = client.register_many(instances(N), timeout=60.0)
        assert failed == [] and count(node.port) == N
        with Lines() as log:
            client.close()
        left = count(node.port)
        warned = sum(1 for _, lvl, m in log.lines if "could not deregister" in m)
        assert left == 0, (
            f"after close() {left} of {N} instances are still registered (until evicted as "
            f"silent); close() logged {warned} 'could not deregister' warnings, e.g. "
            f"{next((m[:200] for _, _, m in log.lines if 'could not deregister' in m), '')}"
        )
    finally:
        node.cleanup()
