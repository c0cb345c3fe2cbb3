"""A peer list that names a node by host name (``localhost:P`` for a node that announces
``127.0.0.1:P``, as a list of ``node2.dc:7800`` names a node that advertises its IP).

Before: the node's beacons and config messages named it by the address it announces, which
its peer's list did not spell: the listed address stayed a member down, never heard (a
"(never heard)" row in ``meshreg cluster``, the peer learned again as another row), and
the configuration center counted two configured members of which one was never up:
config reads refused ("catching up") and config writes refused (no majority), for good.
Now a node resolves the host names of its peer list at start (config ``peer_aliases``)
and takes what a peer announces at one of those addresses for the peer listed."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from helpers import NodeProcess, free_port_pair, raw_request, run_cli, wait_until

from meshreg.configcenter.model import ConfigKey
from meshreg.configcenter.replication import responsible_config_node

pytestmark = pytest.mark.timeout(60)


def test_a_peer_listed_by_host_name_is_one_member_and_configs_work(
    start_node: Callable[..., NodeProcess], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    port_a, port_b = free_port_pair(), free_port_pair()
    timing = ("--peer-timeout", "1.0")
    a = NodeProcess(
        "--peer", f"localhost:{port_b}", "--data-dir", str(tmp_path / "a"), *timing, port=port_a
    )
    b = NodeProcess(
        "--peer", f"127.0.0.1:{port_a}", "--data-dir", str(tmp_path / "b"), *timing, port=port_b
    )
    for node in (a, b):
        start_node(*node.extra, port=node.port)

    def rows() -> list[dict]:  # type: ignore[type-arg]
        out = run_cli("cluster", "--json", "-s", a.address)
        return json.loads(out.stdout)["members"] if out.returncode == 0 else []

    def settled() -> bool:
        members = rows()
        return len(members) == 2 and all(m["state"] == "up" for m in members)

    wait_until(settled, 15.0, 0.1, "two members, both up, as node a sees them")
    peer = next(m for m in rows() if m["id"] != a.address)
    assert peer["id"] == b.address and peer["address"] == f"localhost:{port_b}"

    def published() -> bool:
        out = run_cli("config", "publish", "app.yaml", "--content", "k: 1", "-s", a.address)
        return out.returncode == 0

    wait_until(published, 15.0, 0.2, "a config publish acknowledged by both members")

    def read_on_b() -> bool:
        out = run_cli("config", "get", "app.yaml", "-s", b.address)
        return out.returncode == 0 and out.stdout.strip() == "k: 1"

    wait_until(read_on_b, 10.0, 0.1, "the config read on node b")
    out = run_cli("config", "get", "app.yaml", "-s", a.address)
    assert out.returncode == 0 and out.stdout.strip() == "k: 1", out.stderr


def test_a_data_id_s_owner_is_computed_from_the_cluster_reply_s_announced(
    start_node: Callable[..., NodeProcess], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """review67 F1: with a peer list naming nodes by host name, and node ids that are not
    addresses (``--node-id``), neither the member map's ``address`` nor its ``id`` is
    what a data id is hashed under; its ``announced`` is (PROTOCOL.md 2.15, 6.1): the
    owner computed from it is the node that assigns each write's revision."""
    port_a, port_b = free_port_pair(), free_port_pair()
    timing = ("--peer-timeout", "1.0")
    a = NodeProcess("--node-id", "node-a", "--peer", f"localhost:{port_b}",
                    "--data-dir", str(tmp_path / "a"), *timing, port=port_a)  # fmt: skip
    b = NodeProcess("--node-id", "node-b", "--peer", f"localhost:{port_a}",
                    "--data-dir", str(tmp_path / "b"), *timing, port=port_b)  # fmt: skip
    for node in (a, b):
        start_node(*node.extra, port=node.port)

    def members() -> list[dict]:  # type: ignore[type-arg]
        reply = raw_request(a.port, {"v": 1, "id": 1, "op": "cluster"}, 2.0)
        return reply["result"]["members"] if reply.get("ok") else []

    wait_until(lambda: [m["state"] for m in members()] == ["up", "up"], 15.0, 0.1,
               "two members, both up, as node a sees them")  # fmt: skip

    def settled(port: int) -> bool:
        """The node's config view is the formed cluster's: ready, both members up, and
        neither one a learner of the other (right after the first beacons one node may
        see the other's list not naming it yet, and own no data id for a moment: under
        load a's first publish was taken by a, 3 runs in 66, the owner by the hash b)."""
        reply = raw_request(port, {"v": 1, "id": 3, "op": "stats"}, 2.0)
        config = reply.get("result", {}).get("config", {}) if reply.get("ok") else {}
        return bool(config.get("ready")) and config.get("members_up") == 2 and not (
            config.get("learner_of") or config.get("learners")
        )

    wait_until(lambda: settled(a.port) and settled(b.port), 15.0, 0.1, "config views settled")
    rows = members()
    assert {m["announced"] for m in rows} == {a.address, b.address}
    assert f"localhost:{port_b}" in {m["address"] for m in rows}
    announced = [m["announced"] for m in rows]
    owners = set()
    for n in range(12):
        data_id = f"app-{n}.yaml"
        owner = responsible_config_node(ConfigKey("public", "DEFAULT_GROUP", data_id), announced)
        owners.add(owner)

        def published(data_id: str = data_id) -> dict | None:  # type: ignore[type-arg]
            reply = raw_request(a.port, {"v": 1, "id": 2, "op": "config_publish",
                                         "data_id": data_id, "content": "k: 1"}, 3.0)  # fmt: skip
            return reply["result"] if reply.get("ok") else None

        result = wait_until(published, 15.0, 0.2, f"{data_id} published")
        assert result["origin"] == owner, (data_id, result["origin"], owner)
    assert owners == {a.address, b.address}  # (both owners seen: the check can fail)
    table = run_cli("cluster", "-s", a.address)  # the CLI's table says it too
    assert table.returncode == 0, table.stderr
    (row,) = [line for line in table.stdout.splitlines() if f"localhost:{port_b}" in line]
    assert f"announces {b.address}" in row, table.stdout
    (own,) = [line for line in table.stdout.splitlines() if line.startswith("*")]
    assert "announces" not in own, table.stdout  # the same spelling: nothing to say
