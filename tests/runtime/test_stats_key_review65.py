"""review65 F4: ``stats = true`` (review64 F3) grants a monitoring key node stats with no
read access, on the ground that "the figures are node-wide counts that name no namespace,
service or data id and carry no content" (docs/SECURITY.md, PROTOCOL.md 2.8).  They do
name namespaces: ``config.configs_by_namespace`` is the 20 largest namespaces by live data
ids, by name.  A key that may read nothing learns other tenants' namespace names (which
``namespaces`` withholds from it) and their sizes; the metrics export labels them
(``meshreg_configs_by_namespace{namespace=...}``).  A NodeRuntime with no sockets, on a
fake clock, as in test_cluster_counts.py.  Failed on the reviewed version."""

from __future__ import annotations

from typing import Any

import msgpack

from meshreg.config import NodeConfig
from meshreg.runtime.node import NodeRuntime
from meshreg.security.acl import Principal
from meshreg.wire.replies import encode_request

START = 1764547200.0
MONITORING = Principal("monitoring", (), stats=True)  # allow = [], stats = true
SECRET_NAMESPACE = "acme-merger-2026"


def serve(rt: NodeRuntime, op: str, principal: Principal, **fields: Any) -> dict[str, Any]:
    frames = rt._serve([b"m", b"", encode_request(op, 7, **fields)], START, principal)
    assert frames is not None
    reply: dict[str, Any] = msgpack.unpackb(frames[-1], raw=False)
    assert reply["ok"], reply
    return reply


def test_a_stats_key_learns_no_namespace_name() -> None:
    rt = NodeRuntime(NodeConfig(host="127.0.0.1", port=7800), clock=lambda: START, epoch=1)
    publish = encode_request("config_publish", 1, namespace=SECRET_NAMESPACE,
                             data_id="db.properties", content="password=x")  # fmt: skip
    assert rt._serve([b"t", b"", publish], START) is None  # answered once committed
    rt.configs.flush(START)
    listed = serve(rt, "namespaces", MONITORING)["result"]
    assert SECRET_NAMESPACE not in str(listed)  # (the listing withholds it)
    stats = serve(rt, "stats", MONITORING)["result"]
    assert SECRET_NAMESPACE not in str(stats), (
        "stats = true (names nothing, SECURITY.md) named a namespace the key may not read: "
        f"config.configs_by_namespace = {stats['config']['configs_by_namespace']}"
    )
