"""review61 F2 (low, diagnostics): during the cluster-key rotation of docs/SECURITY.md
("Rotating keys", the cluster key: step 2 restarts the nodes with cluster-2.key, step 3
switches the clients' --server-key), a client still on the old server key logs, for its
notification connection, "refused this client's notification connection (connection
closed during the handshake (Broken pipe)): its key is not accepted there now (the
node's ACL)".  The client's key is in the ACL; what differs is the server key the client
trusts.  The same client's request path says it right ("is server_key the cluster's
public key, and this client's key in the node's ACL?").  An operator reading the first
line edits the ACL, which changes nothing.

An ACL refusal comes back as "authentication refused (ZAP status 400)"; a server-key
mismatch as a closed handshake: the client can tell them apart, and at least must not
name the ACL alone.

Seen by hand (three keyed nodes on 331x0, README's acl.toml, a `meshreg register` sidecar
with orders-app-2.key and the old cluster.pub): three such lines, one per node.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest
from helpers import NodeProcess, free_port_pair, meshreg_cmd, wait_until

from meshreg import Client

pytestmark = pytest.mark.timeout(90)


def _keygen(tmp: Path, name: str) -> None:
    subprocess.run(meshreg_cmd("keygen", str(tmp / name)), check=True, capture_output=True)


def _keyed_node(tmp: Path, key: str, port: int, tag: str) -> NodeProcess:
    node = NodeProcess(
        "--key", str(tmp / key), "--acl", str(tmp / "acl.toml"),
        "--data-dir", str(tmp / f"d-{tag}"), port=port,
    )  # fmt: skip
    node.launch()
    wait_until(lambda: "serving requests" in node.log(), 20, what=f"keyed node ({tag}) serving")
    return node


def test_old_server_key_is_not_reported_as_an_acl_refusal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("cluster", "cluster-2", "app"):
        _keygen(tmp_path, name)
    (tmp_path / "acl.toml").write_text(
        '[[client]]\nname = "app"\nkey_file = "app.pub"\n'
        'allow = [{ namespace = "*", group = "*", service = "*", access = "admin" }]\n'
    )
    port = free_port_pair()
    node = _keyed_node(tmp_path, "cluster.key", port, "old")
    client = Client(
        [node.address], key=str(tmp_path / "app.key"),
        server_key=str(tmp_path / "cluster.pub"), timeout=3.0,
    )  # fmt: skip
    node2 = None
    try:
        client.subscribe("orders", lambda xs: None)  # the notification connection is up
        caplog.set_level(logging.WARNING, logger="meshreg")
        node.stop()  # step 2 of the rotation: the node comes back with cluster-2.key
        node2 = _keyed_node(tmp_path, "cluster-2.key", port, "new")

        def refused_lines() -> list[str]:
            return [
                r.getMessage()
                for r in caplog.records
                if "notification connection" in r.getMessage() and "refused" in r.getMessage()
            ]

        lines = wait_until(refused_lines, 30, 0.1, "the client to say its notifications fail")
        line = lines[0]
        assert "server_key" in line or "server key" in line or "cluster key" in line, (
            "a client whose server key is the old cluster key was told its own key is not "
            f"in the node's ACL:\n{line}"
        )
    finally:
        client.close()
        node.cleanup()
        if node2 is not None:
            node2.cleanup()
