"""F1: a config owner whose loop stalled answers "outcome unknown" for a write a majority
acknowledged in time: its timers run before it reads the acks waiting in its socket.

Steps (seeded simulation, 3 nodes, default timings: ack timeout 2 s, peer timeout 3 s,
a stall is detected from peer_timeout / 3 = 1 s):
1. A client publishes a data id straight to its responsible node (request id, a deadline
   2.5 s + 0.5 s away, as the Python client stamps a config write).
2. The owner applies it and sends its records; right after that turn its loop stalls
   (a GC pause, a slow fsync, SIGSTOP) for 2.2 s.  Both peers persist the version and
   acknowledge it within milliseconds: the acks wait in the owner's socket.
3. The loop resumes, with the turn's timers first (``Network.resume(order="tick")``: the
   same order a real loop has after a stall inside ``dispatch``: ``prepare`` runs the
   timers before the next poll reads anything).

What happens: the owner's ``ConfigReplicator.tick`` finds the write's ack deadline
(arrival + 2 s) past and answers UNAVAILABLE "... the outcome is unknown" at once; the acks
read a moment later find no pending write (``on_ack``: ``pending is None``).  The client
hears "outcome unknown" for a write that a majority persisted 2 s before and re-sends it
(or, without a request id, must read the data id first).  The node
detected the stall (``StallDetected``: the registry core pushes every peer's
``last_heard`` to now for exactly this reason, "beacons may be waiting unread"), yet the
config timers are not given the same allowance.

What should happen: docs/CONFIG.md / PROTOCOL.md 2.15: the owner acknowledges a write
once a majority persisted it; a majority did, in time, well within the client's attempt
(CONFIG_WRITE_ATTEMPT 2.5 s).  The owner must not judge its peers slow by its own stall:
read what waits (or extend the deadline by the stall) before timing the write out, and
answer OK (the version committed).
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


@pytest.mark.parametrize("seed", [7101, 7102])
def test_owner_stall_answers_outcome_unknown_for_an_acknowledged_write(seed: int) -> None:
    net = start_cluster(seed, 3)
    net.run_until(5.0)
    assert all(runtime(net, n).configs.ready for n in net.nodes)
    owner = config_owner(net, KEY)
    rep = runtime(net, owner).configs.replicator
    sent = net.now
    reply = raw_request(
        net, net.nodes[owner], "config_publish", namespace=KEY.namespace, group=KEY.group,
        data_id=KEY.data_id, content="v1", request_id="r71-f1-0123456789abcdef",
        deadline=deadline_ms(net, 2.5),
    )
    run_until_true(net, lambda: bool(rep._pending), sent + 0.5)  # applied, records out
    net.pause(owner)
    net.run_until(sent + 2.2)  # the peers acknowledged long ago; their acks wait
    acked_by = [
        n for n in net.nodes if n != owner
        and runtime(net, n).configs.store.current(KEY) is not None
    ]
    net.resume(owner, "tick")
    net.run_until(net.now + 0.2)
    problems = []
    if len(acked_by) < 2:
        problems.append(f"setup: only {acked_by} hold the version")
    if not reply or not reply[0].get("ok"):
        problems.append(f"a write both peers persisted within ms answered: {reply}")
    current = runtime(net, owner).configs.store.current(KEY)
    if current is None or not current.committed:
        problems.append(f"the owner's version is not committed: {current}")
    assert not problems, scenario_message(net, "config owner stalled, acks unread", problems)
