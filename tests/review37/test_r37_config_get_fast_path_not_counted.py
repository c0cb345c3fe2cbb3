"""review37 F3: `stats.requests` (and so `meshreg_requests_total{op="config_get"}`)
misses every `config_get` answered by the node's fast path (ConfigPlane.fast_get: a
version read before), i.e. nearly all of them.

PROTOCOL.md 2.8: "`requests` | valid requests handled, by op (...; `config_*` ops
counted by the node the client asked)"; README *Monitoring*: `meshreg_requests_total{op}`
"requests by op".  By hand: 100 `config_get`s of one data id -> requests.config_get 1
(100 `beat`s and 100 `instances` next to them: 100 each).  During a flood of 200,000
config_gets (review37 /tmp/r37/e3.py) the node's figures showed none of them, so an
operator cannot see the load.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from r37lib import TENANTS_ACL, RawDealer, keyed_node, make_keys, reply_text, wait_until

N = 50


@pytest.mark.timeout(90)
def test_every_config_get_is_counted_in_requests(tmp_path: Path) -> None:
    keys = make_keys(tmp_path, "tenantA", "tenantB", "ops")
    node = keyed_node(tmp_path, TENANTS_ACL, keys)
    a = ops = None
    try:
        node.start()
        a = RawDealer(node.port, keys["tenantA"])
        ops = RawDealer(node.port, keys["ops"])
        wait_until(
            lambda: a.call("config_publish", namespace="nsA", data_id="c", content="x",
                           request_id="r37f3" + "0" * 27, timeout=10)["ok"],
            30, 0.5, what="the config to be published",
        )  # fmt: skip

        def counted() -> int:
            r = ops.call("stats")
            assert r["ok"], reply_text(r)
            return r["result"]["requests"].get("config_get", 0)

        before = counted()
        for _ in range(N):
            r = a.call("config_get", namespace="nsA", data_id="c")
            assert r["ok"], reply_text(r)
        after = counted()
        assert after - before == N, (
            f"{N} config_get requests answered, stats.requests.config_get grew by "
            f"{after - before} ({before} -> {after})"
        )
    finally:
        for d in (a, ops):
            if d is not None:
                d.close()
        node.cleanup()
