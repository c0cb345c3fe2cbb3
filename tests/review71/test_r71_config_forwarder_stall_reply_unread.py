"""F3: a node that forwarded a config write, its loop stalled, answers "outcome unknown"
(FORWARD_TIMEOUT) though the owner's OK waits in its socket.

Steps (seeded simulation, 3 nodes, default timings: FORWARD_TIMEOUT 2.2 s, the client's
write attempt CONFIG_WRITE_ATTEMPT 2.5 s):
1. A client publishes a data id through a node that is not its owner (a request id, the
   client's deadline 2.5 s + 0.5 s away).  The node forwards it to the owner.
2. Right after that turn the forwarder's loop stalls for 2.3 s (a GC pause, a slow fsync,
   SIGSTOP).  The owner commits the write (a majority within milliseconds) and sends its
   ``config_forward_reply`` (ok): it waits in the forwarder's socket.
3. The forwarder resumes with its timers first (``Network.resume(order="tick")``: as a
   real loop after a stall inside ``dispatch``: ``prepare`` ticks before the next poll).

What happens: ``ConfigPlane.tick`` finds the forward's deadline (arrival + 2.2 s) past and
answers the client UNAVAILABLE "the data id's responsible node ... did not answer within
2.2 s; ... the outcome is unknown" while the client's attempt (2.5 s) is still running;
the owner's answer, read a moment later, is dropped as late (``_forward_answered``).

What should happen: docs/CONFIG.md (a forwarding node answers "within FORWARD_TIMEOUT"
with "the owner's answer, or UNAVAILABLE ... outcome unknown" when the owner did not
answer): the owner did answer, within milliseconds; the forwarder should relay it (read
what waits before expiring forwards, or count the stall out of the wait) instead of
telling a client its committed write's outcome is unknown (the client re-sends).
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from r71lib import (  # noqa: E402
    config_owner,
    deadline_ms,
    raw_request,
    run_until_true,
    runtime,
    scenario_message,
    start_cluster,
)

from meshreg.configcenter.model import ConfigKey  # noqa: E402

KEY = ConfigKey("public", "DEFAULT_GROUP", "app.yaml")


@pytest.mark.parametrize("seed", [7121, 7122])
def test_stalled_forwarder_answers_outcome_unknown_for_a_committed_write(seed: int) -> None:
    net = start_cluster(seed, 3)
    net.run_until(5.0)
    assert all(runtime(net, n).configs.ready for n in net.nodes)
    owner = config_owner(net, KEY)
    via = next(n for n in net.nodes if n != owner)
    plane = runtime(net, via).configs
    sent = net.now
    reply = raw_request(
        net, net.nodes[via], "config_publish", namespace=KEY.namespace, group=KEY.group,
        data_id=KEY.data_id, content="v1", request_id="r71-f3-0123456789abcdef",
        deadline=deadline_ms(net, 2.5),
    )
    run_until_true(net, lambda: bool(plane._forwards), sent + 0.5)  # forwarded
    net.pause(via)
    net.run_until(sent + 2.3)  # past FORWARD_TIMEOUT (2.2 s), within the attempt (2.5 s)
    committed = runtime(net, owner).configs.store.current(KEY)
    net.resume(via, "tick")
    net.run_until(net.now + 0.1)
    problems = []
    if committed is None or not committed.committed:
        problems.append(f"setup: the owner had not committed the write: {committed}")
    if not reply or not reply[0].get("ok"):
        problems.append(f"a write its owner committed in ms answered: {reply}")
    assert not problems, scenario_message(net, "config forwarder stalled", problems)
