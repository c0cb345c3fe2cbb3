"""review18 F1, F2: narrowing a key's ACL must deregister the session instances it may no
longer register also after its client failed over from the node it opened the session
through (F1: only that node knew the session's opener), when the narrowed ACL is applied
by a rolling restart (F1), and when the ACL entry is renamed in the same reload (F2: the
opener was remembered by the entry's name).  docs/SECURITY.md "Reloading"."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import zmq.auth
from click.testing import CliRunner
from conftest import CLUSTER_TIMINGS, CLUSTER_UNHEALTHY_AFTER
from helpers import NodeProcess, free_port_pair, holds_for, start_all, wait_until

from meshreg import Client
from meshreg.cli import main

ACL = """
[[client]]
name = "{name}"
key_file = "app.pub"
allow = [{{ namespace = "a", service = "{pattern}", access = "write" }}]
[[client]]
name = "ops"
key_file = "ops.pub"
allow = [{{ namespace = "*", access = "admin" }}]
"""


def _lab(tmp_path: Path) -> tuple[Path, tuple[bytes, bytes, bytes], tuple[str, ...]]:
    """Keys cluster, app, ops; the ACL (app may write s*); (the ACL file, the cluster
    key's CURVE triple for raw requests, the node's --key/--acl arguments)."""
    for name in ("cluster", "app", "ops"):
        assert CliRunner().invoke(main, ["keygen", str(tmp_path / name)]).exit_code == 0
    acl = tmp_path / "acl.toml"
    acl.write_text(ACL.format(name="app", pattern="s*"))
    pub, sec = zmq.auth.load_certificate(str(tmp_path / "cluster.key"))
    return acl, (pub, sec, pub), ("--key", str(tmp_path / "cluster.key"), "--acl", str(acl))


def _listed(tmp_path: Path, node: NodeProcess, service: str) -> dict[str, bool]:
    """``service``'s instances on ``node`` (address -> healthy), as ops reads them."""
    sk = str(tmp_path / "cluster.pub")
    with Client([node.address], namespace="a", key=str(tmp_path / "ops.key"), server_key=sk,
                timeout=2) as ops:  # fmt: skip
        return {i.address: i.healthy for i in ops.instances(service, healthy_only=False)}


def test_narrowing_after_failover_deregisters(started_nodes, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.CRITICAL)
    acl, curve, key = _lab(tmp_path)
    ports = [free_port_pair() for _ in range(3)]
    peers = sum((["--peer", f"127.0.0.1:{p}"] for p in ports), [])
    nodes = [NodeProcess(*CLUSTER_TIMINGS, *peers, *key, port=p, curve=curve) for p in ports]
    started_nodes.extend(nodes)
    start_all(nodes)
    a, b, c = nodes
    sk = str(tmp_path / "cluster.pub")
    app = Client([a.address], namespace="a", key=str(tmp_path / "app.key"), server_key=sk,
                 beat_interval=0.5)  # fmt: skip

    def listed(node: NodeProcess, service: str) -> dict[str, bool]:
        return _listed(tmp_path, node, service)

    try:
        app.register("s1", "10.0.0.1", 1)
        app.register("s2", "10.0.0.2", 1)
        wait_until(lambda: all(listed(n, "s2") == {"10.0.0.2:1": True} for n in nodes), 10.0,
                   0.2, "s2 on every node")  # fmt: skip
        a.kill()  # the node the session was opened through
        wait_until(lambda: app.server != a.address, 15.0, 0.1, "the client to fail over")
        # past unhealthy_after: the session lives on the survivors through its renewals
        holds_for(lambda: all(listed(n, "s2") == {"10.0.0.2:1": True} for n in (b, c)),
                  CLUSTER_UNHEALTHY_AFTER + 1.0)  # fmt: skip

        acl.write_text(ACL.format(name="app", pattern="s1"))  # app may no longer register s2
        for n in (b, c):
            n.signal(signal.SIGHUP)
        for n in (b, c):
            wait_until(lambda n=n: "reload: ACL" in n.log(), 5.0, what="the reload")
        try:
            wait_until(lambda: all("10.0.0.2:1" not in listed(n, "s2") for n in (b, c)), 8.0,
                       0.2, "s2 10.0.0.2:1 to be deregistered")  # fmt: skip
        except AssertionError:
            raise AssertionError(
                "after the client failed over from the node its session was opened through, "
                "narrowing its key to service s1 (SIGHUP on both live nodes) left a/DEFAULT_GROUP"
                f"/s2 10.0.0.2:1 registered and healthy: {[listed(n, 's2') for n in (b, c)]}; "
                "(s1 still: "
                f"{[listed(n, 's1') for n in (b, c)]})"
            ) from None
        assert all(listed(n, "s1") == {"10.0.0.1:1": True} for n in (b, c))
    finally:
        app.close()


def test_narrowed_acl_applied_by_rolling_restart_deregisters(
    started_nodes, tmp_path: Path, caplog
) -> None:
    """The same hole, by the other usual way to apply an ACL edit: restart the nodes one
    by one with the new file (systemctl restart). Each restarted node gets the instance
    and the session back from its peers (opener unknown), the client's renewals keep
    them, no register is ever checked again: after all three restarts the key still
    has its instance in s2, which it may no longer register."""
    caplog.set_level(logging.CRITICAL)
    acl, curve, key = _lab(tmp_path)
    ports = [free_port_pair() for _ in range(3)]
    peers = sum((["--peer", f"127.0.0.1:{p}"] for p in ports), [])

    def make(port: int) -> NodeProcess:
        node = NodeProcess(*CLUSTER_TIMINGS, *peers, *key, port=port, curve=curve)
        started_nodes.append(node)
        return node

    nodes = start_all([make(p) for p in ports])
    sk = str(tmp_path / "cluster.pub")
    app = Client([n.address for n in nodes], namespace="a", key=str(tmp_path / "app.key"),
                 server_key=sk, beat_interval=0.5)  # fmt: skip

    def listed(node: NodeProcess, service: str = "s2") -> dict[str, bool]:
        return _listed(tmp_path, node, service)

    try:
        app.register("s1", "10.0.0.1", 1)
        app.register("s2", "10.0.0.2", 1)
        wait_until(lambda: all(listed(n) == {"10.0.0.2:1": True} for n in nodes), 10.0, 0.2,
                   "s2 on every node")  # fmt: skip
        acl.write_text(ACL.format(name="app", pattern="s1"))  # app may no longer register s2
        for i in range(3):
            nodes[i].stop()
            nodes[i] = make(nodes[i].port).start()
            wait_until(lambda n=nodes[i]: listed(n, "s1") == {"10.0.0.1:1": True}, 10.0, 0.2,
                       "the restarted node to hold s1 again")  # fmt: skip
        after: list[dict[str, bool]] = []

        def gone() -> bool:
            after[:] = [listed(n) for n in nodes]
            return all("10.0.0.2:1" not in x for x in after)

        try:  # the client's next renewal on a node under the new ACL checks its session
            wait_until(gone, 10.0, 0.2, "s2 gone")
        except AssertionError:
            pass
        logs = "\n".join(n.log()[-3000:] for n in nodes)
        assert all("10.0.0.2:1" not in x for x in after), logs + (
            "every node was restarted with the ACL narrowed to s1, yet the key's instance "
            f"a/DEFAULT_GROUP/s2 10.0.0.2:1 is still registered: {after}"
        )
    finally:
        app.close()


def test_rename_and_narrow_deregisters(start_node, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.CRITICAL)
    acl, curve, key = _lab(tmp_path)
    node = start_node(*CLUSTER_TIMINGS, *key, curve=curve)
    sk = str(tmp_path / "cluster.pub")
    app = Client([node.address], namespace="a", key=str(tmp_path / "app.key"), server_key=sk,
                 beat_interval=0.5)  # fmt: skip
    ops = Client([node.address], namespace="a", key=str(tmp_path / "ops.key"), server_key=sk)

    def listed(service: str) -> dict[str, bool]:
        return {i.address: i.healthy for i in ops.instances(service, healthy_only=False)}

    try:
        app.register("s1", "10.0.0.1", 1)
        app.register("s2", "10.0.0.2", 1)
        wait_until(lambda: listed("s2") == {"10.0.0.2:1": True}, 5.0, what="s2")
        acl.write_text(ACL.format(name="app-v2", pattern="s1"))  # renamed, and no s2
        node.signal(signal.SIGHUP)
        wait_until(lambda: "reload: ACL" in node.log(), 5.0, what="the reload")
        # the key may no longer register s2: a fresh register is refused ...
        try:
            app.register("s2", "10.0.0.3", 1)
            raise AssertionError("register in s2 allowed after the narrowing")
        except AssertionError:
            raise
        except Exception as exc:  # PermissionDeniedError
            assert "PERMISSION_DENIED" in str(exc) or "may not" in str(exc), exc
        # ... but the session keeps the one it registered before (3 x unhealthy_after)
        try:
            wait_until(lambda: "10.0.0.2:1" not in listed("s2"), 3 * CLUSTER_UNHEALTHY_AFTER,
                       0.2, "s2 10.0.0.2:1 to go")  # fmt: skip
        except AssertionError:
            holds_for(lambda: listed("s2").get("10.0.0.2:1") is True, 0.5)
            raise AssertionError(
                "the ACL entry of key app.pub was renamed app -> app-v2 and narrowed to s1 "
                "(one reload): a register in s2 is refused, yet its session keeps "
                f"a/DEFAULT_GROUP/s2 10.0.0.2:1 registered and healthy: {listed('s2')}"
            ) from None
    finally:
        app.close()
        ops.close()
