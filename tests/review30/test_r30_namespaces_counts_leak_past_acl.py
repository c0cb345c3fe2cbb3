"""review30: `namespaces` tells a key confined by the ACL how many services and configs a
namespace holds, including those it may not read.

PROTOCOL.md 1.2: "`services` listings are filtered to what the key may read; `count` then
counts only the visible services"; a refusal "never reveals whether a service exists".
2.7a (new): the `namespaces` listing "names only the namespaces where it may read some
service or data id", but node.py `_namespaces_request` filters only the names: the counts
are the namespace's totals.

Seen (one keyed node; admin registered 3 services and published 4 configs in `team-a`):
key `teama`, allowed only `read` on services `pay*` of `team-a` (no config access: a
config rule needs service "*"), gets `services` team-a -> count 0, and `namespaces` ->
[{"namespace": "team-a", "services": 3, "configs": 4}].  A key allowed `orders*` in every
namespace gets every tenant's name with its counts (`secret-merger`: 2 services, 4
configs), though `services` there answers count 0."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "review23"))
from helpers import RawDealer  # noqa: E402
from r23lib import keyed_node, make_keys  # noqa: E402

ACL = """
[[client]]
name = "admin"
key_file = "admin.pub"
allow = [{ namespace = "*", access = "admin" }]

[[client]]
name = "teama"
key_file = "teama.pub"
allow = [{ namespace = "team-a", service = "pay*", access = "read" }]

[[client]]
name = "orders"
key_file = "orders.pub"
allow = [{ namespace = "*", service = "orders*", access = "read" }]

[[client]]
name = "cfg"
key_file = "cfg.pub"
allow = [{ namespace = "team-b", group = "app", service = "*", access = "read" }]
"""


@pytest.mark.timeout(60)
def test_namespaces_counts_only_what_the_key_may_read(tmp_path: Path) -> None:
    keys = make_keys(tmp_path, "admin", "teama", "orders", "cfg")
    node = keyed_node(tmp_path, ACL, keys).start()
    dealers: list[RawDealer] = []
    try:
        admin = RawDealer(node.port, keys["admin"])
        dealers.append(admin)

        def register(ns: str, service: str, port: int) -> None:
            r = admin.call("register", namespace=ns, service=service, ip="10.0.0.1", port=port)
            assert r["ok"], r

        def publish(ns: str, group: str, data_id: str) -> None:
            r = admin.call("config_publish", namespace=ns, group=group, data_id=data_id,
                           content="x", request_id=f"r30-{ns}-{group}-{data_id}")  # fmt: skip
            assert r["ok"], r

        for i in range(3):
            register("team-a", f"svc{i}", 80 + i)
        for i in range(4):
            publish("team-a", "DEFAULT_GROUP", f"c{i}")
        register("secret-merger", "deal", 90)
        publish("team-b", "app", "a.yaml")
        publish("team-b", "app", "b.yaml")
        publish("team-b", "other", "c.yaml")

        def listing(name: str) -> list[dict]:
            client = RawDealer(node.port, keys[name])
            dealers.append(client)
            got = client.call("namespaces")
            assert got["ok"], got
            return got["result"]["namespaces"]

        tenant = RawDealer(node.port, keys["teama"])
        dealers.append(tenant)
        services = tenant.call("services", namespace="team-a")
        assert services["ok"] and services["result"]["count"] == 0, services  # none visible
        rows = listing("teama")
        leaked = [r for r in rows if r["services"] or r["configs"]]
        assert not leaked, (
            f"a key that may read no service and no config of team-a learns its size: {rows} "
            f"(its `services` says count 0)"
        )
        register("team-a", "pay1", 99)  # one it may read: counted, the others not
        assert listing("teama") == [{"namespace": "team-a", "services": 1, "configs": 0}]
        # orders* everywhere, and no orders* service anywhere: no tenant named
        assert listing("orders") == []
        register("secret-merger", "orders-api", 91)
        assert listing("orders") == [{"namespace": "secret-merger", "services": 1, "configs": 0}]
        # config read on one group: its data ids counted, not the other group's
        assert listing("cfg") == [{"namespace": "team-b", "services": 0, "configs": 2}]
        full = {r["namespace"]: (r["services"], r["configs"]) for r in listing("admin")}
        assert full == {"team-a": (4, 4), "secret-merger": (2, 0), "team-b": (0, 3)}, full
    finally:
        for d in dealers:
            d.close()
        node.cleanup()
