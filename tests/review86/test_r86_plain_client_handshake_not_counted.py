"""review86 F1: PROTOCOL.md 1.2 says a client without CURVE, like an unknown key, "never
completes the handshake: nothing is answered ... (counted in `stats.handshakes_refused`)".
The node does not count it: `handshakes_refused` stays 0 after a plain (non-CURVE) client
tried a node that runs with a key, and goes to 1 only for an unknown CURVE key (what 2.8's
table says: "CURVE handshakes the ZAP handler refused"). A client author who checks the
counter to diagnose "no reply" (1.2's own advice) finds nothing for the missing-CURVE case.

Failed on the code of its review (the doc's 1.2 and the node, and 2.8, disagreed).  Fixed
(transport/descriptors): the node counts it, in ``handshakes_refused`` when it read the
client's greeting before the client hung up, else in ``handshakes_unfinished`` (the
client usually sees the mismatch first; 1.2 now says so): the test takes either."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgpack
import pytest
import zmq
from helpers import NodeProcess, wait_until

sys.path.insert(0, str(Path(__file__).parent))
import docclient as dc  # noqa: E402

pytestmark = pytest.mark.timeout(60)


def _keygen(tmp: Path, name: str) -> None:
    subprocess.run([sys.executable, "-m", "meshreg", "keygen", name], cwd=tmp, check=True,
                   capture_output=True)


def _plain_ping_no_reply(port: int) -> None:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    try:
        sock.connect(f"tcp://127.0.0.1:{port}")
        sock.send_multipart([b"", msgpack.packb({"v": 1, "id": 1, "op": "ping"})])
        assert not sock.poll(1500), "a plain client was answered by a CURVE node"
    finally:
        sock.close()


def test_a_client_without_curve_is_counted_in_handshakes_refused(tmp_path: Path) -> None:
    for name in ("cluster", "app"):
        _keygen(tmp_path, name)
    (tmp_path / "acl.toml").write_text(
        '[[client]]\nname = "app"\nkey_file = "app.pub"\n'
        'allow = [{ namespace = "*", access = "read" }]\n'
    )
    ck = dc.read_cert(str(tmp_path / "cluster.key"))
    admin = (ck["public-key"].encode(), ck["secret-key"].encode(), ck["public-key"].encode())
    node = NodeProcess("--key", str(tmp_path / "cluster.key"), "--acl", str(tmp_path / "acl.toml"),
                       "--data-dir", str(tmp_path / "data"), curve=admin)
    try:
        node.start()
        admin_client = dc.DocClient(node.address, curve=dc.Curve(*(k.decode() for k in (
            admin[2], admin[0], admin[1]))))
        def counted() -> int:
            stats = admin_client.ok("stats")
            return int(stats["handshakes_refused"]) + int(stats["handshakes_unfinished"])

        before = counted()
        _plain_ping_no_reply(node.port)
        # 1.2: "Any other key, and a client without CURVE, never completes the handshake
        # ... (counted in stats.handshakes_refused)"
        try:
            wait_until(lambda: counted() > before, 3.0,
                       what="handshakes_refused or _unfinished to count the plain client")
        except AssertionError:
            after = counted()
            pytest.fail(f"a client without CURVE got no reply, as 1.2 says, but "
                        f"stats.handshakes_refused stayed {before} -> {after} (1.2 says it is "
                        f"counted there; 2.8 says only ZAP refusals are)")
        finally:
            admin_client.close()
    finally:
        node.cleanup()
