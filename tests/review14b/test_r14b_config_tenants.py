"""review14b: the config center's only quota, `max_configs` (100,000 data ids, tombstones
included: docs/CONFIG.md "Limits"), is per node, not per namespace or client. The registry
has `max_services_per_namespace` and `max_instances_per_client` precisely so that one
tenant cannot take the node from the others; configs have nothing of the kind, and the
limit is not configurable.

Fixed (quota15): `[config] max_configs_per_namespace` (10,000 by default) bounds the live
data ids of one namespace; tenant-a's flood now stops there (its other publishes are
RESOURCE_EXHAUSTED naming its namespace), and tenant-b creates as before."""

from __future__ import annotations

import secrets
from pathlib import Path

import msgpack
import pytest
import zmq
import zmq.auth
from helpers import NodeProcess, run_cli

from meshreg.configcenter.model import DEFAULT_MAX_CONFIGS_PER_NAMESPACE as PER_NAMESPACE

ACL = """
[[client]]
name = "tenant-a"
key_file = "tenant-a.pub"
allow = [{ namespace = "a", access = "write" }]
[[client]]
name = "tenant-b"
key_file = "tenant-b.pub"
allow = [{ namespace = "b", access = "write" }]
"""


def _publish_many(
    port: int, curve: tuple[bytes, bytes, bytes], namespace: str, count: int
) -> dict[str, int]:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = curve
    outcome: dict[str, int] = {}
    try:
        sock.connect(f"tcp://127.0.0.1:{port}")
        in_flight = 0
        for k in range(count):
            body = {"v": 1, "id": k + 1, "op": "config_publish", "namespace": namespace,
                    "data_id": f"d{k}", "content": "x",
                    "request_id": secrets.token_hex(16)}  # fmt: skip
            sock.send_multipart([b"", msgpack.packb(body)])
            in_flight += 1
            while in_flight >= 256 or (k == count - 1 and in_flight):
                assert sock.poll(20_000), f"no reply in 20 s after {k + 1} publishes"
                reply = msgpack.unpackb(sock.recv_multipart()[-1], raw=False)
                in_flight -= 1
                name = "ok" if reply["ok"] else reply["error"]["name"]
                outcome[name] = outcome.get(name, 0) + 1
                if not reply["ok"]:
                    outcome["last error: " + reply["error"]["message"][:200]] = 1
    finally:
        sock.close()
    return outcome


@pytest.mark.timeout(150)
def test_one_tenant_cannot_stop_every_other_namespace_from_creating_configs(
    tmp_path: Path,
) -> None:
    """A keyed node; tenant-a may write namespace "a" only, tenant-b namespace "b" only.
    tenant-a publishes 100,000 one-byte configs in "a" (about 10 s). tenant-b's first
    config in "b" must still be accepted.

    On main (9b209f2): RESOURCE_EXHAUSTED "this node holds 100000 data ids, its limit
    (config_max_configs 100000); delete some first", which tenant-b cannot do (and
    deleting leaves tombstones that count). Without keys, any anonymous client does the
    same in 9 s (config_fill.py)."""
    for name in ("cluster", "tenant-a", "tenant-b"):
        assert run_cli("keygen", str(tmp_path / name)).returncode == 0
    (tmp_path / "acl.toml").write_text(ACL)
    server_pub, _ = zmq.auth.load_certificate(str(tmp_path / "cluster.key"))

    def curve(name: str) -> tuple[bytes, bytes, bytes]:
        pub, sec = zmq.auth.load_certificate(str(tmp_path / f"{name}.key"))
        assert sec is not None
        return (pub, sec, server_pub)

    node = NodeProcess("--key", str(tmp_path / "cluster.key"), "--acl", str(tmp_path / "acl.toml"),
                       "--data-dir", str(tmp_path / "d"), curve=curve("tenant-a"))  # fmt: skip
    try:
        node.start()
        flood = _publish_many(node.port, curve("tenant-a"), "a", 100_000)
        # (on main: >= 99,000 ok; now tenant-a's share of the node, and no more)
        outcome = {k: v for k, v in flood.items() if not k.startswith("last error: ")}
        assert outcome == {"ok": PER_NAMESPACE, "RESOURCE_EXHAUSTED": 100_000 - PER_NAMESPACE}
        refusal = next(k for k in flood if k.startswith("last error: "))
        assert f"namespace 'a' holds {PER_NAMESPACE} live configs" in refusal, refusal
        assert "max_configs_per_namespace" in refusal, refusal
        victim = _publish_many(node.port, curve("tenant-b"), "b", 1)
        assert victim == {"ok": 1}, (
            f"after tenant-a's {flood.get('ok')} configs in its own namespace, tenant-b's "
            f"first config in namespace 'b' got: {victim}"
        )
    finally:
        node.cleanup()
