"""review33 F4 (low, error messages): a one-shot CLI command whose connection's ZMTP
handshake fails says the server "refused the connection (nothing listens there)", while
a meshreg node listens there and answered the handshake:

* a node with a key, a command without one (the security mechanisms differ);
* (not tested here, it fails only about half the time: the node's notification port
  P+1 given as the server, a socket type the request DEALER cannot talk to.)

The client knows better: transport/handshakes.handshake_failure words the failure
("security mechanism mismatch (one side has a key, the other none)", ...) and the
time-out path of the same session prints it ("... said: ..."), but the
``fail_when_refused`` path (session.py ``_fail_unsent``, every one-shot CLI command)
takes libzmq's reconnect after a failed handshake for a refused connection."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from helpers import NodeProcess, run_cli  # noqa: E402

from meshreg.security.keys import generate_key_files, load_public_key, load_secret_key  # noqa: E402


@pytest.mark.timeout(60)
def test_keyed_node_without_key_is_not_said_to_be_absent(tmp_path) -> None:
    tmp = str(tmp_path)
    key, pub = generate_key_files(os.path.join(tmp, "cluster"))
    client_key, client_pub = generate_key_files(os.path.join(tmp, "ops"))
    acl = os.path.join(tmp, "acl.toml")
    with open(acl, "w", encoding="utf-8") as fh:
        fh.write(
            '[[client]]\nname = "ops"\nkey_file = "ops.pub"\n'
            'allow = [{ namespace = "*", group = "*", service = "*", access = "admin" }]\n'
        )
    server = load_public_key(str(pub))
    mine = load_secret_key(str(client_key))
    node = NodeProcess(
        "--key", str(key), "--acl", acl, "--data-dir", os.path.join(tmp, "data"),
        curve=(mine.public, mine.secret, server),
    )  # fmt: skip
    try:
        node.start()
        ok = run_cli("ping", "-s", node.address, "--key", str(client_key), "--server-key", str(pub))
        assert ok.returncode == 0, ok  # the node is there and answers a keyed client

        out = run_cli("ping", "-s", node.address, "--timeout", "3")  # no key
        assert out.returncode == 1, out
        assert "nothing listens there" not in out.stderr, (
            "a keyed node answering the handshake was reported as absent to a client "
            f"without a key: {out.stderr.strip()}"
        )
    finally:
        node.cleanup()
