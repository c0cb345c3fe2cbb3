"""review19: a config write that never reached any node, because no connection to one was
ever made (the client's --server-key is not the cluster's: the CURVE handshake fails, so
not one byte of the request is delivered), is reported as "the outcome of this
config_publish is unknown (it may have been applied, or may still be): re-send it with
request_id=...".

docs/CONFIG.md: "Two kinds of UNAVAILABLE. Refused before anything was written ... " and
the CLI's errors should name what failed and what to try; PROTOCOL.md 2.15: "A call that
ends with no answer at all has an unknown outcome". Here the client knows more than "no
answer": no handshake ever completed, so nothing left it; telling an operator whose only
mistake is a key file that a publish (or a delete) "may have been applied" sends them to
re-send and read back configs for nothing, and hides the key problem at the end of a
long sentence. (The same message comes for a port where nothing listens.)
"""

from __future__ import annotations

from pathlib import Path

import zmq.auth
from click.testing import CliRunner
from helpers import run_cli

from meshreg.cli import main


def test_write_with_wrong_server_key_is_not_reported_as_maybe_applied(
    start_node, tmp_path: Path
) -> None:
    for name in ("cluster", "other", "ops"):
        assert CliRunner().invoke(main, ["keygen", str(tmp_path / name)]).exit_code == 0
    acl = tmp_path / "acl.toml"
    acl.write_text(
        '[[client]]\nname = "ops"\nkey_file = "ops.pub"\n'
        'allow = [{ namespace = "*", access = "admin" }]\n'
    )
    pub, sec = zmq.auth.load_certificate(str(tmp_path / "cluster.key"))
    node = start_node(
        "--key", str(tmp_path / "cluster.key"), "--acl", str(acl), curve=(pub, sec, pub)
    )
    good = ("--key", str(tmp_path / "ops.key"), "--server-key", str(tmp_path / "cluster.pub"))
    wrong = ("--key", str(tmp_path / "ops.key"), "--server-key", str(tmp_path / "other.pub"))

    out = run_cli("config", "publish", "app.yaml", "--content", "a: 1",
                  "-s", node.address, "--timeout", "2", *wrong)  # fmt: skip
    assert out.returncode == 1, out
    # nothing was written: the node never saw the request
    read = run_cli("config", "get", "app.yaml", "-s", node.address, *good)
    assert read.returncode == 1 and "no config 'app.yaml'" in read.stderr, read
    assert "may have been applied" not in out.stderr, (
        f"a write that never left the client (no CURVE handshake with {node.address} ever "
        f"completed) is reported as possibly applied: {out.stderr.strip()}"
    )
