"""review14b: what the config center lets one client make a node hold in memory.

The registry has quotas on everything a client can grow ([limits]: metadata 512 MiB,
instances, services, namespaces, sessions). The config center has one: 100,000 data ids
(docs/CONFIG.md "Limits"), each up to 1 MiB of content, each with 100 revisions of history,
and the node keeps every kept revision's content in memory (ConfigStore._history) as well
as on disk. One client with write on one config group (any client of a node without a
key) can so make every node of the cluster (configs are replicated) hold up to
100,000 x 100 x 1 MiB. etcd bounds this with --quota-backend-bytes (2 GiB by default).
"""

from __future__ import annotations

import secrets
from pathlib import Path

import msgpack
import pytest
import zmq
from helpers import NodeProcess
from util14b import rss_mb

MIB = 1024 * 1024
PUBLISHES = 640  # of 1 MiB: 640 MiB, above the registry's own metadata quota (512 MiB)
BUDGET_MB = 512


@pytest.mark.timeout(120)
def test_config_bytes_one_client_can_make_a_node_hold_are_bounded(tmp_path: Path) -> None:
    """A client publishes 1 MiB contents: 64 revisions of each of 10 data ids (every one
    kept: keep_revisions is 100). Either a quota refuses it at some point
    (RESOURCE_EXHAUSTED, like every registry quota), or the node's memory does not grow by
    more than 512 MB (history on disk need not be in RAM).

    On main (9b209f2): every publish is accepted and the node's RSS grows by about as
    much as the content (probe config_bytes.py: 150 revisions of one data id: 35 -> 273
    MB; 300 data ids: 35 -> 426 MB)."""
    node = NodeProcess("--data-dir", str(tmp_path / "d")).start()
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(f"tcp://127.0.0.1:{node.port}")
        before = rss_mb(node)
        filler = "z" * (MIB - 64)
        refused: dict[str, int] = {}
        other: dict[str, int] = {}
        in_flight = 0
        for k in range(PUBLISHES):
            body = {"v": 1, "id": k + 1, "op": "config_publish", "data_id": f"blob{k % 10}",
                    "content": f"{k}:" + filler, "request_id": secrets.token_hex(16)}  # fmt: skip
            sock.send_multipart([b"", msgpack.packb(body)])
            in_flight += 1
            while in_flight >= 4 or (k == PUBLISHES - 1 and in_flight):
                assert sock.poll(20_000), f"no reply in 20 s after {k + 1} publishes"
                reply = msgpack.unpackb(sock.recv_multipart()[-1], raw=False)
                in_flight -= 1
                if not reply["ok"]:
                    name = reply["error"]["name"]
                    (refused if name == "RESOURCE_EXHAUSTED" else other)[name] = (
                        refused if name == "RESOURCE_EXHAUSTED" else other
                    ).get(name, 0) + 1
        grown = rss_mb(node) - before
        assert not other, f"unexpected refusals: {other}"
        assert refused or grown < BUDGET_MB, (
            f"{PUBLISHES} publishes of 1 MiB from one anonymous client were all accepted and "
            f"the node's RSS grew by {grown:.0f} MB ({before:.0f} MB before): no quota on the "
            f"bytes of configs and their history, which are held in memory"
        )
    finally:
        sock.close()
        node.cleanup()
