"""review45 F2: a config above the nodes' content cap (1 MiB) but under the config request
body limit (cap + 64 KiB), sent to a node that is not the data id's responsible node, is
not answered TOO_LARGE: the entry node forwards it, the owner drops the forward ("bad
config message from a peer: config peer message is not one bounded msgpack value"), and
the client hears, 2.2 s later, UNAVAILABLE "the data id's responsible node ... did not
answer within 2.2 s; ... the outcome is unknown", then re-sends it for nothing.  Sent to the
owner itself, the same request is answered at once: "TOO_LARGE ... field 'content' is at
least 1100000 bytes; this node's limit is 1048576 bytes".

How a user gets there: CLI `meshreg config publish X --file F --max-bytes 2000000` (or
MESHREG_CONFIG_MAX_BYTES, Client(config_max_bytes=...)) against nodes with the default cap,
or any node whose cap is lower than its peers' during the rolling restart that raises
`[config] max_content_bytes`.

Expected: every node answers TOO_LARGE (with the request's id) within a second, whichever
node it reaches (fixed: the entry node checks its own cap before it forwards)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from helpers import NodeProcess, free_port_pair, raw_request, start_all


@pytest.mark.timeout(90)
def test_oversized_config_is_too_large_on_every_node(tmp_path: Path) -> None:
    ports = [free_port_pair() for _ in range(3)]
    peers: list[str] = []
    for p in ports:
        peers += ["--peer", f"127.0.0.1:{p}"]
    nodes = [
        NodeProcess(*peers, "--data-dir", str(tmp_path / f"d{i}"), port=p)
        for i, p in enumerate(ports)
    ]
    try:
        start_all(nodes)
        ping = {"v": 1, "id": 1, "op": "ping"}
        deadline = time.monotonic() + 20
        while not all(raw_request(n.port, ping, 2.0)["result"].get("config_ready") for n in nodes):
            assert time.monotonic() < deadline, "configs never ready"
            time.sleep(0.1)
        content = "a" * 1_100_000  # > 1 MiB cap, < 1 MiB + 64 KiB body limit
        answers = {}
        for i, n in enumerate(nodes):
            body = {
                "v": 1, "id": 40 + i, "op": "config_publish", "namespace": "public",
                "group": "DEFAULT_GROUP", "data_id": "r45-big.txt", "content": content,
                "request_id": f"r45big{i:026d}",
            }  # fmt: skip
            reply = raw_request(n.port, body, 10.0)
            answers[n.address] = (reply.get("id"), reply.get("error", {}).get("name"),
                                  reply.get("error", {}).get("message", ""))  # fmt: skip
        bad = {a: v for a, v in answers.items()
               if v[:2] != (40 + ports.index(int(a.rsplit(":", 1)[1])), "TOO_LARGE")
               or "this node's limit is 1048576 bytes" not in v[2]}  # fmt: skip
        assert not bad, (
            "a 1,100,000-byte config (node cap 1 MiB) was not answered TOO_LARGE by every "
            f"node: {bad} (all answers: {answers})"
        )
        for n in nodes:  # nothing was written anywhere
            got = raw_request(
                n.port,
                {
                    "v": 1,
                    "id": 9,
                    "op": "config_get",
                    "namespace": "public",
                    "group": "DEFAULT_GROUP",
                    "data_id": "r45-big.txt",
                },
                5.0,
            )
            assert got["error"]["name"] == "NOT_FOUND", got
    finally:
        for n in nodes:
            n.cleanup()
