"""review52 F4: every oversized non-config body leaks its decoded self: RSS grows ~1 MB a
request, for good, from any client (no key needed, no right needed).

PROTOCOL.md 1.6: a body above ``MAX_BODY_BYTES`` (64 KiB) gets ``TOO_LARGE``; only a
``config_*`` body may be larger (up to the content cap + 64 KiB).  runtime/node
``_decode_config`` decodes the whole body (up to 1.06 MiB, any shape within the
structural limits) to learn whether its op is a config op, and raises a
``RequestRejected`` it made *before* decoding and keeps in a local (``too_large``):
exception -> traceback -> frame -> ``too_large`` is a reference cycle that holds the
frame's locals, the decoded body among them.  The node turns off full collections
(runtime/gc_policy: "the node does not create such cycles"); the decoded lists were
promoted out of the young generations while being built, so the cycle is never
collected.

By hand (/tmp/r52/probe_leak.py, default config): 4 connections sending `config_nope`
bodies of 1,003,045 bytes (a 1000 x 1000 array of zeros in a `pad` field) for 24 s:
1,338 TOO_LARGE replies, node RSS 39 -> 1,469 MiB, still 1,473 MiB 9 s after they
stopped (~1.07 MiB per request); the node also logged "this node was stalled for 1.4s
... judging nobody's health for 15s" three times meanwhile.  A valid `config_get` with
the same pad does not grow the node (no exception).  The op can be anything that is not
a config op (a `ping` here), and decoding happens before the ACL is consulted.
"""

from __future__ import annotations

import time
from pathlib import Path

import msgpack
import pytest
from helpers import wait_until
from r52lib import NodeProcess, dealer, packb, rss_mb

REQUESTS = 250  # ~1 MB each: ~260 MB leaked today
BOUND_MB = 64


@pytest.mark.timeout(120)
def test_oversized_non_config_bodies_do_not_grow_the_node(tmp_path: Path) -> None:
    node = NodeProcess("--data-dir", str(tmp_path / "data"))
    sock = None
    try:
        node.start()
        assert node.proc is not None
        pid = node.proc.pid
        body = packb({"v": 1, "id": 7, "op": "ping", "pad": [[0] * 1000 for _ in range(1000)]})
        sock = dealer(node.port)
        # warm up (the allocator's first arenas), then measure
        for _ in range(10):
            sock.send_multipart([b"", body])
            assert sock.poll(10_000)
            sock.recv_multipart()
        base = rss_mb(pid)
        codes = set()
        deadline = time.monotonic() + 90
        for _ in range(REQUESTS):  # one at a time, each reply read: nothing queued
            sock.send_multipart([b"", body])
            assert sock.poll(10_000), "no reply within 10 s"
            reply = msgpack.unpackb(sock.recv_multipart()[-1])
            codes.add(reply["error"]["name"] if not reply["ok"] else "ok")
            assert time.monotonic() < deadline
        try:  # what the last replies held is given back (then the bound is judged)
            wait_until(lambda: rss_mb(pid) - base <= BOUND_MB, 5.0, 0.1, "the RSS back")
        except AssertionError:
            pass
        grown = rss_mb(pid) - base
        assert grown <= BOUND_MB, (
            f"{REQUESTS} {len(body)}-byte `ping` bodies, each answered {sorted(codes)}, grew "
            f"the node by {grown:.0f} MiB (from {base:.0f}; bound {BOUND_MB} MiB): the "
            f"decoded bodies are kept"
        )
    finally:
        if sock is not None:
            sock.close()
        node.stop()
        node.cleanup()
