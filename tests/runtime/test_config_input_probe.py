"""The runtime's probe of its sockets (``NodeRuntime._input_waiting``), which the config
plane asks before committing a small turn on the loop thread (runtime/config_commit
``InlineChoice``): True exactly while a request or a peer message waits to be read."""

from __future__ import annotations

import time

import msgpack
import zmq
from helpers import free_port_pair

from meshreg.config import NodeConfig
from meshreg.runtime.node import NodeRuntime

DEADLINE = 10.0  # s; for a message sent on loopback to be seen waiting


def _wait_waiting(rt: NodeRuntime) -> None:
    """Until the probe sees a message (bounded; a zmq poll waits, no fixed sleep)."""
    deadline = time.monotonic() + DEADLINE
    poller = zmq.Poller()
    for sock in (rt._router, rt._peer_router):
        poller.register(sock, zmq.POLLIN)  # type: ignore[arg-type]
    while not rt._input_waiting():
        left = deadline - time.monotonic()
        assert left > 0, "the probe never saw the message"
        poller.poll(min(left, 0.5) * 1000.0)


def test_the_probe_sees_a_waiting_request_and_a_waiting_peer_message(tmp_path) -> None:  # type: ignore[no-untyped-def]
    port = free_port_pair(4)
    peer = free_port_pair(4)  # configured, never started: the dealers stay quiet
    config = NodeConfig(host="127.0.0.1", port=port, peers=(f"127.0.0.1:{peer}",),
                        data_dir=str(tmp_path / "n"))  # fmt: skip
    rt = NodeRuntime(config)
    ctx = zmq.Context()
    client = ctx.socket(zmq.DEALER)
    other = ctx.socket(zmq.DEALER)
    try:
        poller = rt.start_loop()
        assert rt.configs._commits.input_waiting == rt._input_waiting  # wired in
        assert rt.configs._commits.writer is not None
        for sock in (client, other):
            sock.setsockopt(zmq.LINGER, 0)
        client.connect(f"tcp://127.0.0.1:{port}")
        other.connect(f"tcp://127.0.0.1:{config.peer_port}")
        assert not rt._input_waiting()
        client.send_multipart([b"", msgpack.packb({"v": 1, "id": 1, "op": "ping"})])
        _wait_waiting(rt)
        rt.dispatch(poller.poll(0))  # the loop reads it: nothing waits any more
        assert not rt._input_waiting()
        other.send_multipart([b"\x00junk"])  # a peer message (rejected when read)
        _wait_waiting(rt)
        rt.dispatch(poller.poll(0))
        assert not rt._input_waiting()
    finally:
        client.close(0)
        other.close(0)
        ctx.term()
        rt.finish()
