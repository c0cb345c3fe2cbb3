"""F2: a forwarding node whose loop stalls applies a write its owner applied and answered
in time a second time ("owner unreachable: apply here"), and the second copy undoes a
later write: a live, re-registered instance is removed.

Steps (seeded simulation, 3 nodes, default timings; the service's owner is n1):
1. Instance 4 is registered (through its owner n1).
2. A client deregisters it through n2 with the Python client's deadline (attempt 1 s:
   deadline = now + 1.5 s).  n2 forwards it to n1 (its wait: deadline - FORWARD_LEAD,
   0.7 s) and right after that turn n2's loop stalls for 0.85 s (a GC pause: below
   stall_after, 1 s; nothing else needed).
3. n1 applies the deregistration at once and answers; the answer waits in n2's DEALER.
4. 0.3 s later the provider registers instance 4 again, through its owner n1: OK,
   replicated.
5. n2 resumes; its turn's timers run before it reads the owner's answer (``prepare`` runs
   ``_expire`` before the next poll; ``Network.resume(order="tick")``).

What happens: ``PeerLinks.expired`` hands the forward back as unanswered;
``_fall_back`` applies the deregistration on n2 with a stamp newer than the
re-registration, replicates it, and answers the client with it (the owner's answer, read
a moment later, is dropped: its fid was popped).  The instance registered again in step 4
is gone from every node.

What should happen: docs/DISTRO.md "Writes and forwarding": the forwarder applies the
write itself only "if the owner cannot be reached (no connection, or no reply within
peer_request_timeout ...)": here the owner replied within 2 ms; PROTOCOL.md 2.1
"Deadline": a write must not be applied late "with a stamp newer than everything since"
(it "would undo the client's later writes ... a late deregister removes an instance
registered again").  The forwarder should read the replies that wait before it decides a
forward is unanswered (or take the stall out of the wait, as the core does for beacons
after a stall), relay n1's answer, and leave the re-registration standing.
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from r71lib import (  # noqa: E402
    WHERE,
    deadline_ms,
    listed,
    owned_by,
    register_fields,
    request,
    run_until_true,
    runtime,
    scenario_message,
    start_cluster,
)

ATTEMPT = 1.0  # s; the Python client's default attempt_timeout


def held(net, node_id: str, service: str) -> bool:  # type: ignore[no-untyped-def]
    out = request(net, net.nodes[node_id], "instances", service=service, **WHERE)
    net.run_until(net.now + 0.05)
    return bool(out) and listed(out[0], 4)


@pytest.mark.parametrize("seed", [7111, 7112])
def test_stalled_forwarder_reapplies_a_deregistration_over_a_later_register(seed: int) -> None:
    net = start_cluster(seed, 3)
    net.run_until(5.0)
    service = owned_by(net, "n1")[0]
    reg = request(net, net.nodes["n1"], "register", **register_fields(service, 4))
    net.run_until(net.now + 0.3)
    assert [s for s, _ in reg] == ["ok"], reg
    dereg = {**register_fields(service, 4), "deadline": deadline_ms(net, ATTEMPT)}
    dereg.pop("weight")
    sent = net.now
    answer = request(net, net.nodes["n2"], "deregister", **dereg)
    peers = runtime(net, "n2")._peers
    run_until_true(net, lambda: bool(peers.forwards), sent + 0.5)  # forwarded to n1
    net.pause("n2")  # its loop stalls (a GC pause) right after that turn
    run_until_true(net, lambda: not held(net, "n1", service), sent + 0.6, 0.01)
    again = request(
        net,
        net.nodes["n1"],
        "register",
        **{**register_fields(service, 4), "deadline": deadline_ms(net, ATTEMPT)},
    )
    net.run_until(net.now + 0.1)
    problems = []
    if [s for s, _ in again] != ["ok"]:
        problems.append(f"setup: the re-registration: {again}")
    net.run_until(sent + 0.85)  # past n2's wait (0.7 s), within the client's attempt (1 s)
    net.resume("n2", "tick")
    net.run_until(net.now + 1.0)
    if [s for s, _ in answer] != ["ok"]:
        problems.append(f"the deregistration's answer: {answer}")
    fallbacks = runtime(net, "n2")._peers.forward_failures
    if fallbacks:
        problems.append(f"n2 applied {fallbacks} forward(s) itself though n1 answered in ms")
    for node_id in net.nodes:
        if not held(net, node_id, service):
            problems.append(f"{node_id} lost the instance registered again after the deregister")
    assert not problems, scenario_message(net, "stalled forwarder's second copy", problems)
