"""Shared bits of the review13 tests: keys, a raw DEALER, peer-plane requests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helpers import NodeProcess, RawDealer, raw_request

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


class Dealer(RawDealer):
    """A raw DEALER (helpers.RawDealer) that can also pipeline requests."""

    def pipeline(self, requests: list[tuple[str, dict[str, Any]]], window: int = 100) -> list:
        out: list[dict[str, Any]] = []
        for i in range(0, len(requests), window):
            chunk = requests[i : i + window]
            for op, fields in chunk:
                self.send(op, **fields)
            out += self.replies(len(chunk))
        return out


def stats(node: NodeProcess, curve: tuple[bytes, bytes, bytes] | None = None) -> dict[str, Any]:
    return raw_request(node.port, {"v": 1, "id": 1, "op": "stats"}, 3.0, curve)["result"]


def peers(addresses: list[str]) -> list[str]:
    out: list[str] = []
    for a in addresses:
        out += ["--peer", a]
    return out
