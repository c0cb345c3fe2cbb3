"""Shared helpers of review54 (a new user's walk through the docs, real processes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers import meshreg_cmd  # noqa: E402


def cli(
    *args: str, cwd: Path | None = None, timeout: float = 30.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``meshreg ARGS`` as a user runs it: its own process, its own exit status."""
    full_env = {**os.environ, **(env or {})}
    for name in ("MESHREG_SERVERS", "MESHREG_KEY", "MESHREG_SERVER_KEY"):
        if env is None or name not in env:
            full_env.pop(name, None)
    return subprocess.run(meshreg_cmd(*args), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env)  # fmt: skip


def keyed_pair(tmp_path: Path, stranger: str) -> list[Any]:
    """Two nodes with a cluster key and an ACL admitting the key "ops" only, launched and
    answering it; keys made in ``tmp_path`` (``cluster``, ``ops`` and ``stranger``, a key
    the ACL does not know).  The caller cleans the nodes up."""
    from helpers import NodeProcess, free_port_pair, wait_until

    for name in ("cluster", "ops", stranger):
        assert cli("keygen", name, cwd=tmp_path).returncode == 0
    (tmp_path / "acl.toml").write_text(
        '[[client]]\nname = "ops"\nkey_file = "ops.pub"\n'
        'allow = [{ namespace = "*", access = "admin" }]\n'
    )
    ports = [free_port_pair() for _ in range(2)]
    peers = [a for p in ports for a in ("--peer", f"127.0.0.1:{p}")]
    nodes = [
        NodeProcess(*peers, "--key", str(tmp_path / "cluster.key"), "--acl",
                    str(tmp_path / "acl.toml"), "--data-dir", str(tmp_path / f"d{p}"), port=p)
        for p in ports
    ]  # fmt: skip
    try:
        for node in nodes:
            node.launch()
        for node in nodes:  # ready: the admitted key answers on both
            wait_until(
                lambda n=node: cli("ping", "--key", "ops.key", "--server-key", "cluster.pub",
                                   "-s", n.address, cwd=tmp_path).returncode == 0,
                30, 0.3, f"{node.address} answers the admitted key",
            )  # fmt: skip
    except BaseException:
        for node in nodes:
            node.cleanup()
        raise
    return nodes
