"""The runtime override of the config ready gate with real processes (docs/CONFIG.md, "The
ready gate"; PROTOCOL.md 2.26a): after a full-cluster restart where only one node comes
back, that node is not ready (it cannot catch up from a majority); ``meshreg config
force-ready`` makes it serve its disk at once, without a restart, and only a client key
with admin access to everything may do it (curve keys, the ACL)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import free_port_pair, run_cli, wait_until
from test_configs import Conn, keys_and_acl, start_nodes

pytestmark = pytest.mark.timeout(150)

ACL = """
[[client]]
name = "ops"
key_file = "ops.pub"
allow = [{ namespace = "*", group = "*", service = "*", access = "admin" }]

[[client]]
name = "cfg-admin"
key_file = "cfgadmin.pub"
allow = [{ namespace = "public", group = "*", service = "*", access = "admin" }]

[[client]]
name = "monitor"
key_file = "monitor.pub"
allow = [{ namespace = "*", group = "*", service = "*", access = "read" }]
"""


def test_an_admin_forces_a_lone_survivor_ready_at_run_time(tmp_path: Path) -> None:
    curve = keys_and_acl(tmp_path, ("ops", "cfgadmin", "monitor"), ACL)
    nodes = start_nodes(3, tmp_path, "--key", str(tmp_path / "cluster.key"), "--acl",
                        str(tmp_path / "acl.toml"), curve=curve("cluster"))  # fmt: skip
    conns: list[Conn] = []

    def conn(port: int, name: str) -> Conn:
        c = Conn(port, curve(name))
        conns.append(c)
        return c

    try:
        for node in nodes:
            watcher = conn(node.port, "monitor")
            wait_until(lambda c=watcher: c.ok("stats")["config"]["ready"], 15,
                       what="config plane ready")  # fmt: skip
        v1 = conn(nodes[0].port, "ops").ok("config_publish", data_id="gate.txt", content="v1")
        for node in nodes:  # acknowledged by a majority; every node holds it (repair)
            reader = conn(node.port, "monitor")
            wait_until(lambda c=reader: c.call("config_get", data_id="gate.txt")["ok"], 15,
                       what="v1 everywhere")  # fmt: skip
        for node in nodes:
            node.stop()
        lone = nodes[0]
        lone.start()  # its peers never come back
        monitor = conn(lone.port, "monitor")
        stats = monitor.ok("stats")["config"]
        assert not stats["ready"] and not stats["forced_ready"]
        name, message = monitor.error("config_get", data_id="gate.txt")
        assert name == "UNAVAILABLE" and "catching up" in message
        # admin on one namespace, or read everywhere, is not enough: refused, nothing changed
        for who in ("cfgadmin", "monitor"):
            name, message = conn(lone.port, who).error("config_force_ready")
            assert name == "PERMISSION_DENIED", (who, message)
            assert "needs admin access to every namespace" in message
        stats = monitor.ok("stats")
        assert not stats["config"]["ready"] and stats["permission_denied"] >= 2
        assert "READY FORCED" not in lone.log()
        # the operator, through the CLI, with the admin key: ready at once, no restart
        keys = ("--key", str(tmp_path / "ops.key"), "--server-key", str(tmp_path / "cluster.pub"))
        done = run_cli("config", "force-ready", "-s", lone.address, "--json", *keys)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"node": lone.address, "was_ready": False,
                                           "forced_ready": True}  # fmt: skip
        got = monitor.ok("config_get", data_id="gate.txt")
        assert got["content"] == "v1" and got["revision"] == v1["revision"]
        stats = monitor.ok("stats")["config"]
        assert stats["ready"] and stats["forced_ready"]
        assert "READY FORCED by 'ops' (admin op config_force_ready)" in lone.log()
        shown = run_cli("cluster", "-s", lone.address, *keys).stdout
        assert "configs: ready (FORCED by the operator" in shown, shown
        # ready is for reads: both commands say that writes wait for a majority (review27)
        assert "WRITES REFUSED: this node sees 1 of its 3 configured members up and a config " \
            "write needs 2" in shown, shown  # fmt: skip
        name, message = conn(lone.port, "ops").error("config_publish", data_id="gate.txt",
                                                     content="alone")  # fmt: skip
        assert name == "UNAVAILABLE" and "need a majority" in message  # writes: unchanged
        again = run_cli("config", "force-ready", "-s", lone.address, *keys)  # idempotent
        assert again.returncode == 0 and "already forced ready" in again.stdout, again
        assert lone.log().count("READY FORCED by") == 1
        denied = run_cli("config", "force-ready", "-s", lone.address, "--key",
                         str(tmp_path / "cfgadmin.key"), "--server-key",
                         str(tmp_path / "cluster.pub"))  # fmt: skip
        assert denied.returncode == 1 and "needs admin access to every namespace" in denied.stderr
    finally:
        for c in conns:
            c.close()
        for node in nodes:
            node.cleanup()


def test_force_ready_needs_the_node_named_with_s() -> None:
    """review61 F6: without -s it went to MESHREG_SERVERS or 127.0.0.1:7800; an override
    that drops a safety gate names its node."""
    for env in (None, {"MESHREG_SERVERS": "127.0.0.1:1"}):
        out = run_cli("config", "force-ready", env=env)
        assert out.returncode == 2, out
        assert "name it with -s host:port" in out.stderr, out.stderr
    dead = f"127.0.0.1:{free_port_pair()}"
    for args in (("config", "force-ready", "-s", dead), ("-s", dead, "config", "force-ready")):
        out = run_cli(*args, "--timeout", "0.5")
        assert out.returncode == 1 and "name it with -s" not in out.stderr, out
