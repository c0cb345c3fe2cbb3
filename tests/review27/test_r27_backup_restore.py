"""review27 F4: backup and disaster recovery of a cluster.

a) What operators set on the registry -- drains (`instance-set --enabled false`),
   weights, protection thresholds, service metadata -- lived only in each node's
   ``registry-state.sqlite3`` and was in no export: after a rebuild from `config export`
   a drained instance was back in every consumer's list.  Now `meshreg snapshot save`
   takes a node's data dir while it runs (configs with their history, registry settings)
   and `meshreg snapshot restore` puts it back (docs/OPERATIONS.md, "Backup and restore").
b) `config export` takes one namespace, and nothing listed them all (`stats` names the 20
   largest).  Now `meshreg namespaces` lists every one.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading

import pytest
from helpers import run_cli
from r27lib import all_ready, cluster, req, wait_until

from meshreg import Client


@pytest.mark.timeout(150)
def test_a_drain_survives_the_documented_disaster_recovery(tmp_path) -> None:
    nodes = cluster(3, str(tmp_path))
    servers = ",".join(n.address for n in nodes)
    provider = Client(servers.split(","), handle_sigterm=False)
    writer = Client(servers.split(","), handle_sigterm=False)
    stop = threading.Event()
    acked: dict[str, int] = {}  # data id -> highest revision acknowledged

    def write_on() -> None:  # configs change while the snapshot is taken
        k = 0
        while not stop.is_set() and k < 2000:
            data_id = f"live{k % 20}.yaml"
            info = writer.config_publish(data_id, f"k: {k}\n")
            acked[data_id] = info.revision
            k += 1

    thread = threading.Thread(target=write_on, daemon=True)
    try:
        wait_until(lambda: all_ready(nodes), 30, 0.1, "3 members up and ready")
        provider.register("orders", "10.0.0.1", 80)
        provider.register("orders", "10.0.0.2", 80)
        provider.config_publish("app.yaml", "a: 1\n")
        provider.config_publish("app.yaml", "a: 2\n")
        for args in (
            ("instance-set", "orders", "10.0.0.2:80", "--enabled", "false"),
            ("instance-set", "orders", "10.0.0.1:80", "--weight", "3"),
            ("service-set", "orders", "--protect-threshold", "0.5", "--meta", "owner=team-a"),
        ):
            out = run_cli(*args, "-s", servers)
            assert out.returncode == 0, out.stderr
        # every node persisted the settings (their owner replicated them)
        wait_until(
            lambda: all(_orders(n, lambda r: r["protect_threshold"] == 0.5) for n in nodes),
            10,
            0.1,
            "the settings on every node",
        )
        thread.start()
        wait_until(lambda: len(acked) == 20, 30, 0.05, "configs being written")
        # what the snapshot must hold: acknowledged and stored on the node it is taken from
        # (a majority acknowledged it, maybe not that node yet); writes go on meanwhile
        in_snapshot = dict(acked)
        wait_until(
            lambda: all(_revision(nodes[1], d) >= r for d, r in in_snapshot.items()),
            10,
            0.05,
            "the acknowledged writes stored on the node backed up",
        )
        archive = str(tmp_path / "cluster.snap")
        out = run_cli("snapshot", "save", "--data-dir", str(tmp_path / "data1"), "--out", archive)
        assert out.returncode == 0, out.stdout + out.stderr
        stop.set()
        thread.join(30)
        out = run_cli("snapshot", "inspect", archive, "--json")
        assert out.returncode == 0, out.stderr
        counts = json.loads(out.stdout)["counts"]
        assert counts["service_settings"] == 1 and counts["instance_overrides"] == 2, counts
        # the disaster: every node and its data dir lost
        for n in nodes:
            n.signal(signal.SIGKILL)
        for n in nodes:
            n.kill()
        for i in range(3):
            shutil.rmtree(os.path.join(str(tmp_path), f"data{i}"))
        # restore the same snapshot into every member (docs/OPERATIONS.md; review30 F1:
        # one restored member and two empty ones lose writes the empty ones acknowledge)
        for i in range(3):
            where = str(tmp_path / f"data{i}")
            out = run_cli("snapshot", "restore", archive, "--data-dir", where)
            assert out.returncode == 0, out.stdout + out.stderr
            assert "every member's data dir" in out.stdout, out.stdout
        for n in nodes:
            n.launch()
        for n in nodes:
            n.wait_ready(30)
        wait_until(lambda: all_ready(nodes), 60, 0.1, "the rebuilt cluster ready")
        # the provider (still running) registers its instances again by itself

        def settled(node) -> dict | None:
            return _orders(node, lambda r: len(r["instances"]) == 2)

        for node in nodes:
            what = f"orders back on {node.address}"
            result = wait_until(lambda n=node: settled(n), 30, 0.2, what)
            by_ip = {i["ip"]: i for i in result["instances"]}
            assert by_ip["10.0.0.2"]["enabled"] is False, (node.address, by_ip)
            assert by_ip["10.0.0.1"]["weight"] == 3, (node.address, by_ip)
            assert result["protect_threshold"] == 0.5, (node.address, result)
            assert result["service_metadata"] == {"owner": "team-a"}, (node.address, result)
            app = req(node, "config_get", namespace="public", group="DEFAULT_GROUP",
                      data_id="app.yaml")  # fmt: skip
            assert app and app["ok"] and app["result"]["revision"] == 2, (node.address, app)
            for data_id, revision in in_snapshot.items():
                assert _revision(node, data_id) >= revision, (node.address, data_id, revision)
            history = req(node, "config_history", namespace="public", group="DEFAULT_GROUP",
                          data_id="app.yaml")  # fmt: skip
            assert history and history["ok"], history
            assert [e["revision"] for e in history["result"]["items"]][:2] == [2, 1]
    finally:
        stop.set()
        provider.close(timeout=1)
        writer.close(timeout=1)
        for n in nodes:
            n.cleanup()


def _revision(node, data_id: str) -> int:
    got = req(node, "config_get", namespace="public", group="DEFAULT_GROUP", data_id=data_id)
    return got["result"]["revision"] if got and got.get("ok") else 0


def _orders(node, check) -> dict | None:
    r = req(node, "instances", namespace="public", group="DEFAULT_GROUP", service="orders",
            healthy_only=False)  # fmt: skip
    if r and r.get("ok") and check(r["result"]):
        return r["result"]
    return None


@pytest.mark.timeout(90)
def test_a_backup_script_can_list_every_namespace(tmp_path) -> None:
    nodes = cluster(1, str(tmp_path))
    clients = []  # open: closing deregisters their instances
    try:
        for k in range(25):
            c = Client([nodes[0].address], namespace=f"team{k:02d}", handle_sigterm=False)
            clients.append(c)
            c.config_publish("app.yaml", f"team: {k}\n")
            if k % 5 == 0:
                c.register("svc", "10.0.0.1", 80 + k)
        out = run_cli("namespaces", "--json", "-s", nodes[0].address)
        assert out.returncode == 0, out.stderr
        listed = {n["namespace"]: n for n in json.loads(out.stdout)}
        assert set(listed) == {f"team{k:02d}" for k in range(25)}, sorted(listed)
        assert all(n["configs"] == 1 for n in listed.values())
        assert [n for n in listed if listed[n]["services"]] == [
            f"team{k:02d}" for k in range(0, 25, 5)
        ]
        out = run_cli("namespaces", "-s", nodes[0].address)
        assert out.returncode == 0 and "team24" in out.stdout, out.stdout + out.stderr
    finally:
        for c in clients:
            c.close(timeout=1)
        for n in nodes:
            n.cleanup()
