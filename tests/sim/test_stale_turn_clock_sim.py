"""A node stopped (SIGSTOP) in the middle of a drain: the requests it reads after it
resumes, in the same drain, must not be judged by the clock it read before the stop.

Found while checking review13 (F-freeze-reg) under load: a `register` sent to a frozen
owner, with its deadline passed before the owner resumed, was sometimes applied
(tests/integration/test_late_writes.py, 2 runs in about 10 under `-n 2` with other
cluster tests): the owner had read its clock for a drain, was stopped right after
answering the test's ping, and on resuming read the late register in the same drain,
with the time from before the stop.  The runtime now reads the clock again for a write
carrying a deadline.  Here the stop is simulated by calling ``_serve`` with a ``now``
older than the node's clock (what a drain interrupted by a stop does).
"""

from __future__ import annotations

import os
import sys

import msgpack

sys.path.insert(0, os.path.dirname(__file__))

from test_distro_sim import start_cluster  # noqa: E402
from test_runtime_sim import register_fields  # noqa: E402


def test_a_write_read_after_a_stop_mid_drain_is_judged_by_the_time_it_is_read() -> None:
    net = start_cluster(137, 1)
    net.run_until(2.0)
    runtime = net.nodes["n0"].runtime
    assert runtime is not None
    before_stop = net.now  # the drain read its clock here, then the process was stopped
    net.run_until(net.now + 1.5)  # stopped 1.5 s; the write arrived meanwhile
    deadline = before_stop + 1.0  # the client's attempt ended during the stop
    body = msgpack.packb(
        {"v": 1, "id": 5, "op": "register", **register_fields("svc", 1),
         "deadline": round(deadline * 1000)}
    )  # fmt: skip
    reply = runtime._serve([b"client", b"", body], before_stop)
    assert reply is not None
    answer = msgpack.unpackb(reply[-1])
    assert not answer["ok"] and answer["error"]["name"] == "UNAVAILABLE", answer
    assert "after its deadline" in answer["error"]["message"]
    assert runtime.core.registry.late_writes == 1
