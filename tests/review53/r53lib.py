"""Shared helpers of review53 (upgrade/downgrade, kept instance lists, envelope and
reconcile bypasses), real node processes only.

A node process runs the code of a given tree: this worktree's (``TREE_NEW``) or the
previous release's (``previous_tree``: ``git archive`` of ``PREVIOUS`` into a temporary
directory), with its working directory outside both trees (``python -m`` puts the
working directory first on ``sys.path``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import msgpack
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers import (  # noqa: E402
    HOST,
    NodeProcess,
    free_port_pair,
    meshreg_cmd,
    raw_request,
    wait_until,
)

REPO = Path(__file__).resolve().parents[2]
TREE_NEW = REPO
PREVIOUS = "8cb245a"  # the previous release (the brief's)


def previous_tree(dest: Path) -> Path:
    """The previous release's ``meshreg`` package under ``dest`` (git archive)."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", PREVIOUS, "meshreg"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True, timeout=60)
    return dest


class TreeNode(NodeProcess):
    """A node process running the code of ``tree`` (cwd: ``workdir``)."""

    def __init__(self, *extra: str, port: int, tree: Path, workdir: Path) -> None:
        super().__init__(*extra, port=port)
        self.tree = tree
        self.workdir = workdir

    def launch(self) -> TreeNode:
        fd, self.log_path = tempfile.mkstemp(prefix="meshreg-r53-", suffix=".log")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(self.tree)}
        self.proc = subprocess.Popen(
            meshreg_cmd("node", "--host", HOST, "--port", str(self.port), *self.extra),
            stdout=fd, stderr=fd, env=env, cwd=str(self.workdir),
        )  # fmt: skip
        os.close(fd)
        return self


def imported_from(tree: Path, workdir: Path) -> str:
    """Where ``import meshreg`` resolves for a process started as TreeNode starts one."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, "-c", "import meshreg; print(meshreg.__file__)"],
        env=env, cwd=str(workdir), capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def req(node_port: int, op: str, timeout: float = 5.0, /, **fields: Any) -> dict[str, Any]:
    """One request (fresh REQ socket); a time-out is returned as {"ok": False, "timeout"}."""
    try:
        return raw_request(node_port, {"v": 1, "id": 1, "op": op, **fields}, timeout)
    except zmq.Again:
        return {"ok": False, "timeout": True, "error": {"code": -1, "message": "timeout"}}


def wait_for(pred: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    return wait_until(pred, timeout, interval, what)


def members_up(port: int, n: int) -> bool:
    cl = req(port, "cluster", 2.0)
    if not cl.get("ok"):
        return False
    states = [m["state"] for m in cl["result"]["members"]]
    return len(states) == n and all(s == "up" for s in states)


def packb(body: Any) -> bytes:
    return msgpack.packb(body)


__all__ = [
    "HOST",
    "PREVIOUS",
    "TREE_NEW",
    "TreeNode",
    "free_port_pair",
    "imported_from",
    "members_up",
    "packb",
    "previous_tree",
    "raw_request",
    "req",
    "wait_for",
]
