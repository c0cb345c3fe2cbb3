"""Operator overrides (instance-set: drain, weight) outlive the provider's own writes
(review13 F-drain): real node processes, the CLI and the Python client."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from conftest import CLUSTER_TIMINGS
from helpers import NodeProcess, free_port_pair, meshreg_cmd, raw_request, start_all, wait_until
from test_cluster import all_ready

from meshreg import Client

FAST = {"beat_interval": 0.3, "timeout": 5.0, "attempt_timeout": 1.0}


def _enabled_everywhere(nodes: list[NodeProcess], service: str) -> list[dict[str, bool]]:
    views = []
    for n in nodes:
        body = {"v": 1, "id": 1, "op": "instances", "service": service, "healthy_only": False}
        reply = raw_request(n.port, body)
        views.append({f"{i['ip']}:{i['port']}": i["enabled"] for i in reply["result"]["instances"]})
    return views


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(meshreg_cmd(*args), capture_output=True, text=True, timeout=30)


def test_a_drain_outlives_the_provider_registering_again(
    start_cluster: Callable[..., list[NodeProcess]],
) -> None:
    nodes = start_cluster(3)
    wait_until(lambda: all_ready(nodes), timeout=20, what="cluster to form")
    a, b, c = nodes
    both = {"10.7.0.1:1": True, "10.7.0.2:2": True}
    drained = {"10.7.0.1:1": False, "10.7.0.2:2": True}
    with Client([c.address], **FAST) as consumer, Client([c.address], **FAST) as steady:
        steady.register("maint", "10.7.0.2", 2)
        with Client([a.address], **FAST) as provider:
            provider.register("maint", "10.7.0.1", 1)
            wait_until(lambda: _enabled_everywhere(nodes, "maint") == [both] * 3, timeout=10)
            out = _cli("instance-set", "maint", "10.7.0.1:1", "--enabled", "false", "-s", b.address)
            assert out.returncode == 0, out.stderr
            assert out.stdout.strip() == "updated maint 10.7.0.1:1"  # the outcome: stdout
            wait_until(lambda: _enabled_everywhere(nodes, "maint") == [drained] * 3, timeout=10)
            # the app restarts: deregisters on shutdown, registers again on start
            provider.deregister("maint", "10.7.0.1", 1)
            provider.register("maint", "10.7.0.1", 1)
            wait_until(lambda: "10.7.0.1:1" in _enabled_everywhere(nodes, "maint")[2], timeout=10)
            assert _enabled_everywhere(nodes, "maint") == [drained] * 3
            assert {consumer.select("maint").address for _ in range(50)} == {"10.7.0.2:2"}
        # a new process of the app (a new client, a new session) registers it again
        with Client([b.address], **FAST) as provider2:
            provider2.register("maint", "10.7.0.1", 1, weight=3.0)
            wait_until(
                lambda: (
                    consumer.instances("maint", healthy_only=False)
                    and {i.address: i.weight for i in consumer.instances("maint", False)}.get(
                        "10.7.0.1:1"
                    )
                    == 3.0
                ),
                timeout=10,
                what="the provider's own weight (not overridden) to apply",
            )
            assert _enabled_everywhere(nodes, "maint")[0]["10.7.0.1:1"] is False
            assert {consumer.select("maint").address for _ in range(50)} == {"10.7.0.2:2"}
            # --clear: the provider's own values apply again
            out = _cli("instance-set", "maint", "10.7.0.1:1", "--clear", "-s", c.address)
            assert out.returncode == 0, out.stderr
            wait_until(lambda: _enabled_everywhere(nodes, "maint") == [both] * 3, timeout=10)
            wait_until(
                lambda: (
                    {consumer.select("maint").address for _ in range(50)}
                    == {"10.7.0.1:1", "10.7.0.2:2"}
                ),
                what="select to pick the cleared instance again",
            )
            # the Python client's equivalent, and bad input: refused, nothing changed
            consumer.set_instance("maint", "10.7.0.2", 2, weight=7.0)
            consumer.set_instance("maint", "10.7.0.2", 2, clear=True)
            wait_until(
                lambda: (
                    {i.address: i.weight for i in consumer.instances("maint", False)}
                    == {"10.7.0.1:1": 3.0, "10.7.0.2:2": 1.0}
                ),
                timeout=10,
            )
            bad = {
                "v": 1,
                "id": 2,
                "op": "update",
                "service": "maint",
                "ip": "10.7.0.2",
                "port": 2,
                "clear": "yes",
            }

            def invalid() -> int:
                stats = raw_request(a.port, {"v": 1, "id": 3, "op": "stats"})["result"]
                return int(stats["errors"].get("INVALID_ARGUMENT", 0))

            before = invalid()
            reply = raw_request(a.port, bad)
            assert not reply["ok"] and "clear" in reply["error"]["message"]
            mixed = {**bad, "clear": True, "enabled": False}
            reply = raw_request(a.port, mixed)
            assert not reply["ok"] and "clear" in reply["error"]["message"]
            assert invalid() == before + 2  # counted
            assert _enabled_everywhere(nodes, "maint") == [both] * 3


def test_drains_and_settings_survive_a_restart_of_every_node(
    started_nodes: list[NodeProcess], tmp_path: Path
) -> None:
    """Stage 2: with data dirs, a SIGKILL of all three nodes at once loses neither the
    drain nor the service's protection threshold and metadata."""
    ports = [free_port_pair() for _ in range(3)]
    peers = [arg for p in ports for arg in ("--peer", f"127.0.0.1:{p}")]

    def launch() -> list[NodeProcess]:
        nodes = [
            NodeProcess(*CLUSTER_TIMINGS, *peers, "--data-dir", str(tmp_path / f"n{i}"), port=port)
            for i, port in enumerate(ports)
        ]
        started_nodes.extend(nodes)
        return start_all(nodes)

    nodes = launch()
    wait_until(lambda: all_ready(nodes), timeout=20, what="cluster to form")
    drained = {"10.8.0.1:1": False, "10.8.0.2:2": True}
    with Client([nodes[0].address], **FAST) as provider:
        provider.register("keep", "10.8.0.1", 1)
        provider.register("keep", "10.8.0.2", 2)
        provider.set_service("keep", protect_threshold=0.4, metadata={"owner": "ops"})
        out = _cli(
            "instance-set", "keep", "10.8.0.1:1", "--enabled", "false", "-s", nodes[1].address
        )
        assert out.returncode == 0, out.stderr
        wait_until(lambda: _enabled_everywhere(nodes, "keep") == [drained] * 3, timeout=10)
        for n in nodes:  # every node at once, no goodbye
            n.kill()
    nodes = launch()
    wait_until(lambda: all_ready(nodes), timeout=20, what="cluster to form again")
    with Client([nodes[2].address], **FAST) as provider:  # the app registers again
        provider.register("keep", "10.8.0.1", 1)
        provider.register("keep", "10.8.0.2", 2)
        wait_until(
            lambda: _enabled_everywhere(nodes, "keep") == [drained] * 3,
            timeout=15,
            what="the drain back on every node",
        )
        for n in nodes:
            body = {"v": 1, "id": 1, "op": "instances", "service": "keep"}
            result = raw_request(n.port, body)["result"]
            assert result["protect_threshold"] == 0.4, n.address
            assert result["service_metadata"] == {"owner": "ops"}, n.address
        assert {provider.select("keep").address for _ in range(50)} == {"10.8.0.2:2"}
