"""Shared bits of the review13 tests: keys, a raw DEALER, peer-plane requests."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import msgpack
import zmq
from helpers import HOST, NodeProcess, raw_request

from meshreg import Client
from meshreg.security.keys import generate_key_files, load_secret_key

ACL = """
[[client]]
name = "app"
key_file = "app.pub"
allow = [{ namespace = "public", group = "*", service = "*", access = "write" }]

[[client]]
name = "other"
key_file = "other.pub"
allow = [{ namespace = "public", group = "*", service = "*", access = "write" }]
"""


class Keys:
    def __init__(self, root: Path) -> None:
        self.root = root
        for name in ("cluster", "app", "other"):
            generate_key_files(root / name)
        self.acl = root / "acl.toml"
        self.acl.write_text(ACL)

    def key(self, name: str) -> str:
        return str(self.root / f"{name}.key")

    def curve(self, name: str) -> tuple[bytes, bytes, bytes]:
        mine, cluster = load_secret_key(self.key(name)), load_secret_key(self.key("cluster"))
        assert mine.secret is not None
        return mine.public, mine.secret, cluster.public

    def client(self, name: str, address: str, **kw: Any) -> Client:
        return Client(address, key=self.key(name), server_key=str(self.root / "cluster.pub"), **kw)


class Dealer:
    """One raw DEALER connection (optionally CURVE) that sends requests and reads replies."""

    def __init__(self, port: int, curve: tuple[bytes, bytes, bytes] | None = None) -> None:
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            self.sock.curve_publickey, self.sock.curve_secretkey, self.sock.curve_serverkey = curve
        self.sock.connect(f"tcp://{HOST}:{port}")
        self.ids = itertools.count(1)

    def send(self, op: str, **fields: Any) -> None:
        body = {"v": 1, "id": next(self.ids), "op": op, **fields}
        self.sock.send_multipart([b"", msgpack.packb(body)])

    def replies(self, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            left = deadline - time.monotonic()
            assert left > 0, f"{len(out)} of {count} replies within {timeout}s"
            if self.sock.poll(int(left * 1000) + 1):
                out.append(msgpack.unpackb(self.sock.recv_multipart()[-1], raw=False))
        return out

    def call(self, op: str, timeout: float = 5.0, **fields: Any) -> dict[str, Any]:
        self.send(op, **fields)
        return self.replies(1, timeout)[0]

    def pipeline(self, requests: list[tuple[str, dict[str, Any]]], window: int = 100) -> list:
        out: list[dict[str, Any]] = []
        for i in range(0, len(requests), window):
            chunk = requests[i : i + window]
            for op, fields in chunk:
                self.send(op, **fields)
            out += self.replies(len(chunk))
        return out

    def close(self) -> None:
        self.sock.close()


def stats(node: NodeProcess, curve: tuple[bytes, bytes, bytes] | None = None) -> dict[str, Any]:
    return raw_request(node.port, {"v": 1, "id": 1, "op": "stats"}, 3.0, curve)["result"]


def peers(addresses: list[str]) -> list[str]:
    out: list[str] = []
    for a in addresses:
        out += ["--peer", a]
    return out
