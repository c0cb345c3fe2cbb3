"""A node stopped in the middle of a drain (SIGSTOP, a VM freeze) serves what waited out
the stop in its socket by the time after it, its stall known first.

The drain read the clock once (and every ``CHECK_EVERY`` requests): a config write that
arrived while the owner was stopped, its client long gone, was judged by the time before
the stop, in time, and applied on top of an acknowledged write it had not fetched first
(review25's late-write test, once in CI: two versions at revision 2).  The runtime runs
here over the in-memory transport on a fake clock; the "stop" comes between two requests
of one drain."""

from __future__ import annotations

from pathlib import Path

import msgpack

from meshreg.config import NodeConfig, SecurityConfig
from meshreg.runtime.node import NodeRuntime
from meshreg.transport.memory import MemoryNetwork

ADDRESS = "10.0.0.1:7000"
WALL = 1_800_000_000.0  # the wall clock at the fake clock's 0


def test_a_write_that_waited_out_a_stop_mid_drain_is_judged_by_the_time_after_it(
    tmp_path: Path,
) -> None:
    net = MemoryNetwork(7)
    clock = [100.0]
    config = NodeConfig(host="10.0.0.1", port=7000, data_dir=str(tmp_path),
                        security=SecurityConfig(insecure=True))  # fmt: skip
    rt = NodeRuntime(config, lambda: clock[0], 1, transport=net.transport("a"), wall_offset=WALL)
    rt.start_loop()
    replies: list[list[bytes]] = []
    try:
        for _ in range(20):  # a lone node: ready once its first turns ran
            clock[0] += 0.1
            net.run_until(clock[0])
            rt.step()
        serve = rt._serve
        stopped = []

        def serve_then_stop(*args: object, **kwargs: object) -> object:
            reply = serve(*args, **kwargs)  # type: ignore[arg-type]
            if not stopped:  # the process stops right after its first request
                stopped.append(clock[0])
                clock[0] += 10.0
            return reply

        client = net.client(ADDRESS, replies.append)
        client.send_multipart([b"", msgpack.packb({"v": 1, "id": 0, "op": "ping"})])
        for _ in range(5):  # connected, answered
            clock[0] += 0.1
            net.run_until(clock[0])
            rt.step()
        assert len(replies) == 1
        rt._serve = serve_then_stop  # type: ignore[method-assign]
        deadline_ms = round((clock[0] + WALL + 2.0) * 1000)  # 2 s from now, then given up
        client.send_multipart([b"", msgpack.packb({"v": 1, "id": 1, "op": "ping"})])
        net.run_until(clock[0] + 0.05)  # (in its socket before the write)
        client.send_multipart([b"", msgpack.packb({
            "v": 1, "id": 2, "op": "config_publish", "data_id": "app.yaml",
            "content": "void", "deadline": deadline_ms})])  # fmt: skip
        net.run_until(clock[0] + 0.1)
        for _ in range(5):
            rt.step()
            net.run_until(clock[0] + 0.2)
        assert stopped, "the ping was not served"
        answers = {msgpack.unpackb(r[-1])["id"]: msgpack.unpackb(r[-1]) for r in replies}
        assert set(answers) == {0, 1, 2}, answers
        refused = answers[2]
        assert not refused["ok"] and refused["error"]["name"] == "UNAVAILABLE", refused
        assert "after its deadline" in refused["error"]["message"], refused
        stats = rt.configs.replicator.counters
        assert stats["late_writes"] == 1
        assert rt.core.registry.stalls == 1  # the stall was known before the write
    finally:
        rt.close()
