"""review17 F6 (low): `meshreg config import ARCHIVE --history` with a key that may write
but not delete (ACL `write`; `config_delete` needs `admin`) replays a data id that was
deleted at the source (its publishes succeed) and then fails its closing delete: the
target namespace is left with the deleted config LIVE, holding the content the source had
deleted. The import says "failed" for it and exits 1, but the config it made stays.

docs/CONFIG.md / README "Export and import carry each data id's content, gray version,
history and deletions ... with --history replays each history as new revisions, oldest
first"; SECURITY.md: deletes need admin. Expected: an import that cannot write a data
id's whole history (here: its delete) either writes none of it, or is refused before it
writes anything because the key lacks admin (the archive says deletions must be made)."""

from __future__ import annotations

from pathlib import Path

import zmq.auth
from click.testing import CliRunner
from helpers import raw_request, run_cli

from meshreg.cli import main

ACL = """
[[client]]
name = "owner"
key_file = "owner.pub"
allow = [{ namespace = "src", access = "admin" }]
[[client]]
name = "writer"
key_file = "writer.pub"
allow = [{ namespace = "dst", access = "write" }]
"""


def test_import_history_with_write_key_leaves_deleted_config_live(
    start_node, tmp_path: Path
) -> None:
    for name in ("cluster", "owner", "writer"):
        assert CliRunner().invoke(main, ["keygen", str(tmp_path / name)]).exit_code == 0
    (tmp_path / "acl.toml").write_text(ACL)
    pub, sec = zmq.auth.load_certificate(str(tmp_path / "cluster.key"))
    node = start_node(
        "--key",
        str(tmp_path / "cluster.key"),
        "--acl",
        str(tmp_path / "acl.toml"),
        curve=(pub, sec, pub),
    )
    common = ["-s", node.address, "--server-key", str(tmp_path / "cluster.pub")]
    owner = [*common, "--key", str(tmp_path / "owner.key"), "-n", "src"]
    writer = [*common, "--key", str(tmp_path / "writer.key"), "-n", "dst"]
    assert run_cli("config", "publish", "gone", "--content", "old-secret", *owner).returncode == 0
    assert run_cli("config", "delete", "gone", *owner).returncode == 0
    assert run_cli("config", "publish", "kept", "--content", "k", *owner).returncode == 0
    archive = tmp_path / "src.zip"
    out = run_cli("config", "export", "--out", str(archive), *owner)
    assert out.returncode == 0, out.stderr

    out = run_cli("config", "import", str(archive), "--history", *writer)
    listed = raw_request(
        node.port,
        {"v": 1, "id": 1, "op": "config_list", "namespace": "dst"},
        curve=(pub, sec, pub),
    )
    live = {i["data_id"] for i in listed["result"]["items"]}
    assert "gone" not in live, (
        f"after `config import --history` with a write-only key (exit {out.returncode}; "
        f"{out.stdout.strip()!r}; {out.stderr.strip()[:300]!r}), namespace dst holds "
        f"{sorted(live)}: 'gone', deleted at the source, is live with its deleted content"
    )
