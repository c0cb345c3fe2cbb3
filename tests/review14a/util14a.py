"""Shared bits of the review14a tests (outside review of the configuration center: real
processes, the CLI, the Python client, raw requests)."""

from __future__ import annotations

import os
import resource
import subprocess
import tempfile
from typing import Any

import msgpack
import zmq
from helpers import HOST, NodeProcess, meshreg_cmd, raw_request

MiB = 1024 * 1024


class CappedNode(NodeProcess):
    """A node whose address space is capped (RLIMIT_AS): a node that runs away with memory
    gets MemoryError (in its log) instead of taking the machine's memory (the first run of
    this review's probe grew a node to 24 GB and the kernel's OOM killer ended it)."""

    def __init__(self, *extra: str, cap_bytes: int, port: int | None = None) -> None:
        super().__init__(*extra, port=port)
        self.cap_bytes = cap_bytes

    def launch(self) -> CappedNode:
        fd, self.log_path = tempfile.mkstemp(prefix="meshreg-node-r14a-", suffix=".log")
        cap = self.cap_bytes

        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

        self.proc = subprocess.Popen(
            meshreg_cmd("node", "--host", HOST, "--port", str(self.port), *self.extra),
            stdout=fd,
            stderr=fd,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=limit,
        )
        os.close(fd)
        return self


def req(op: str, **fields: Any) -> dict[str, Any]:
    return {"v": 1, "id": 7, "op": op, **fields}


def rss_mib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) // 1024
    return 0


def config_stats(port: int) -> dict[str, Any]:
    reply = raw_request(port, req("stats"))
    assert reply["ok"], reply
    return reply["result"]["config"]  # type: ignore[no-any-return]


def dealer(port: int) -> zmq.Socket[bytes]:
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 100_000)
    sock.connect(f"tcp://{HOST}:{port}")
    return sock


def send(sock: zmq.Socket[bytes], body: dict[str, Any]) -> None:
    sock.send_multipart([b"", msgpack.packb(body)])


def recv(sock: zmq.Socket[bytes], timeout: float) -> dict[str, Any] | None:
    if not sock.poll(int(timeout * 1000)):
        return None
    frames = sock.recv_multipart()
    return msgpack.unpackb(frames[-1], raw=False)  # type: ignore[no-any-return]
