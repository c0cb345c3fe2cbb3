"""A node out of file descriptors says so, and serves again once they are back
(issue 10: M5).  The node runs with a low RLIMIT_NOFILE set before it starts."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator

import pytest
import zmq
from helpers import HOST, free_port_pair, meshreg_cmd, raw_request, wait_until

from meshreg import Client

PING = {"v": 1, "id": 1, "op": "ping"}


class LimitedNode:
    def __init__(self, soft: int, hard: int) -> None:
        self.port = free_port_pair()
        fd, self.log_path = tempfile.mkstemp(prefix="meshreg-fd-", suffix=".log")

        def limit() -> None:  # in the child, before exec
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

        self.proc = subprocess.Popen(
            meshreg_cmd("node", "--host", HOST, "--port", str(self.port)),
            stdout=fd,
            stderr=fd,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=limit,
        )
        os.close(fd)
        wait_until(self.answers, timeout=15, what="the node to answer ping")

    def answers(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"node exited ({self.proc.returncode}):\n{self.log()}")
        try:
            return bool(raw_request(self.port, PING, 0.5)["ok"])
        except zmq.Again:
            return False

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as fh:
            return fh.read()

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        os.unlink(self.log_path)


@pytest.fixture
def limited() -> Iterator[Callable[[int, int], LimitedNode]]:
    nodes: list[LimitedNode] = []

    def start(soft: int, hard: int) -> LimitedNode:
        nodes.append(LimitedNode(soft, hard))
        return nodes[-1]

    yield start
    for node in nodes:
        node.cleanup()


def test_the_node_raises_its_soft_limit_to_the_hard_one_and_logs_it(
    limited: Callable[[int, int], LimitedNode],
) -> None:
    node = limited(64, 300)
    wait_until(lambda: "open file limit is 300 descriptors" in node.log(), timeout=5)
    with open(f"/proc/{node.proc.pid}/limits", encoding="ascii") as fh:
        line = next(x for x in fh if x.startswith("Max open files"))
    assert line.split()[3:5] == ["300", "300"], line


def test_running_out_of_descriptors_is_logged_and_the_node_recovers(
    limited: Callable[[int, int], LimitedNode],
) -> None:
    node = limited(64, 64)
    conns: list[socket.socket] = []
    try:
        for _ in range(100):  # more bare TCP connections than the node has descriptors
            conns.append(socket.create_connection((HOST, node.port), timeout=5))
        needle = f"cannot accept connections on {HOST}:{node.port}: Too many open files (EMFILE)"
        wait_until(lambda: needle in node.log(), timeout=10, what="the EMFILE log line")
        line = next(x for x in node.log().splitlines() if needle in x)
        assert "limit 64" in line and "LimitNOFILE" in line, line
    finally:
        for c in conns:
            c.close()
    with Client([f"{HOST}:{node.port}"], timeout=10.0) as client:
        assert client.ping()["epoch"] > 0  # served again once the descriptors are back
        assert client.stats()["accept_failures"] > 0
    assert node.log().count("cannot accept connections") <= 2  # rate-limited, not a flood


def test_tcp_port_checks_are_counted_and_told_once_at_info_not_warned(
    limited: Callable[[int, int], LimitedNode],
) -> None:
    """A load balancer's or an orchestrator's TCP check (connect, close) ends as an
    unfinished security handshake, like a client with mismatched keys that hangs up
    first: counted, told at INFO at most once per 5 minutes (it names the checks and
    `meshreg ping --ready`), never a WARNING: such checks run every few seconds for good,
    on the default node too."""
    node = limited(8192, 8192)  # (no low-limit warning)
    before = raw_request(node.port, {"v": 1, "id": 2, "op": "stats"}, 2.0)["result"]
    checks = 6
    for _ in range(checks):
        socket.create_connection((HOST, node.port), timeout=5).close()
    want = int(before["handshakes_unfinished"]) + checks

    def counted() -> bool:
        stats = raw_request(node.port, {"v": 1, "id": 3, "op": "stats"}, 2.0)["result"]
        return int(stats["handshakes_unfinished"]) >= want

    wait_until(counted, timeout=10, what=f"{checks} TCP checks counted as unfinished")
    lines = [x for x in node.log().splitlines() if "during the security handshake" in x]
    assert len(lines) == 1 and " INFO " in lines[0], lines
    assert "TCP port check" in lines[0] and "meshreg ping --ready" in lines[0], lines[0]
    assert " WARNING " not in node.log(), node.log()
