"""review83 helpers: a keyed node or cluster with an ACL (ports from the suite's
``free_port_pair``), and raw CURVE DEALER connections per client key."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import helpers
from helpers import NodeProcess, RawDealer, start_all

from meshreg.security.keys import generate_key_files

free_port = helpers.free_port_pair  # p .. p+3 free (a node uses four)


class Keys:
    """The cluster key and one key per client, with an ACL file granting ``rules``."""

    def __init__(self, where: Path, clients: dict[str, str]) -> None:
        self.dir = where
        generate_key_files(where / "cluster")
        entries = []
        for name, allow in clients.items():
            generate_key_files(where / name)
            entries.append(f'[[client]]\nname = "{name}"\nkey_file = "{name}.pub"\n{allow}\n')
        self.acl = where / "acl.toml"
        self.acl.write_text("\n".join(entries))

    def _z85(self, name: str, field: str) -> bytes:
        text = (self.dir / f"{name}.key").read_text()
        found = re.search(field + r'\s*=\s*"(.{40})"', text)
        assert found is not None, text
        return found.group(1).encode()

    def curve(self, name: str) -> tuple[bytes, bytes, bytes]:
        """(public, secret, server public) for a raw socket of ``name``."""
        return (
            self._z85(name, "public-key"),
            self._z85(name, "secret-key"),
            self._z85("cluster", "public-key"),
        )

    def node_args(self) -> tuple[str, ...]:
        return ("--key", str(self.dir / "cluster.key"), "--acl", str(self.acl))

    @contextmanager
    def dealer(self, name: str, port: int) -> Iterator[RawDealer]:
        d = RawDealer(port, self.curve(name))
        try:
            yield d
        finally:
            d.close()


def start_keyed(keys: Keys, n: int, *extra: str) -> list[NodeProcess]:
    """n keyed nodes naming each other as peers (one: no peers); the caller cleans up."""
    ports = [free_port() for _ in range(n)]
    peers: list[str] = []
    if n > 1:
        for p in ports:
            peers += ["--peer", f"127.0.0.1:{p}"]
    nodes = [
        NodeProcess(*keys.node_args(), *peers, *extra, port=p, curve=keys.curve("cluster"))
        for p in ports
    ]
    return start_all(nodes, timeout=30)


def ok(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply["ok"], reply
    return reply["result"]
