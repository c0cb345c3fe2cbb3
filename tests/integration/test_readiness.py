"""Readiness for rolling restarts (review24 F12): ``meshreg ping --ready`` exits 1 while
a node catches up (registry or configs) and 0 once it has; under systemd
(``Type=notify``, ``$NOTIFY_SOCKET``) the node sends READY=1 once caught up, and
STOPPING=1 at SIGTERM."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator

import pytest
from helpers import HOST, NodeProcess, free_port_pair, run_cli, wait_until


@pytest.fixture
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        path = os.path.join(d, "notify")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
            server.bind(path)
            server.setblocking(False)
            monkeypatch.setenv("NOTIFY_SOCKET", path)
            yield server


def received(server: socket.socket, into: list[str]) -> list[str]:
    while True:
        try:
            into.append(server.recv(4096).decode())
        except BlockingIOError:
            return into


@pytest.mark.timeout(60)
def test_a_lone_node_tells_systemd_it_is_ready_then_stopping(
    tmp_path, notify_socket: socket.socket
) -> None:
    node = NodeProcess("--data-dir", str(tmp_path / "d"))
    try:
        node.start()
        got: list[str] = []
        wait_until(lambda: any("READY=1" in m for m in received(notify_socket, got)), 10,
                   0.05, "READY=1")  # fmt: skip
        ready = next(m for m in got if "READY=1" in m)
        assert "STATUS=ready" in ready.splitlines(), got
        out = run_cli("ping", "--ready", "-s", node.address)
        assert out.returncode == 0 and out.stdout.strip().endswith(": ready"), out
        assert node.stop() == 0
        assert any("STOPPING=1" in m for m in received(notify_socket, got)), got
    finally:
        node.cleanup()


@pytest.mark.timeout(60)
def test_configs_without_a_majority_are_not_ready_but_systemd_is_not_held(
    tmp_path, notify_socket: socket.socket
) -> None:
    """One of two configured members up (a cluster starting one node after the other):
    the registry starts alone after peer_timeout and systemd is told READY=1 (else the
    next node's start would wait for it), saying the configs wait; ``ping --ready`` stays
    strict."""
    port, silent = free_port_pair(), free_port_pair()
    node = NodeProcess("--peer-timeout", "1", "--peer", f"{HOST}:{port}",
                       "--peer", f"{HOST}:{silent}", "--data-dir", str(tmp_path / "d"),
                       port=port)  # fmt: skip
    try:
        node.start()
        got: list[str] = []
        wait_until(lambda: any("READY=1" in m for m in received(notify_socket, got)), 15,
                   0.05, "READY=1")  # fmt: skip
        ready = next(m for m in got if "READY=1" in m)
        assert "configs wait for a majority (1 of 2" in ready, got
        out = run_cli("ping", "--ready", "-s", node.address)
        assert out.returncode == 1, out
        # why, and that it will not be ready by itself (review43 F2)
        assert "not ready: configs wait for a majority of the 2 configured" in out.stdout, out
        assert "start the others" in out.stdout and "stays so until then" in out.stderr, out
    finally:
        node.cleanup()
