"""A write whose responsible node is stopped (SIGSTOP, a VM pause), under the seeded
simulation: real node runtimes on the in-memory transport (review13, F-freeze-reg).

* A node that forwards a write carrying the client's ``deadline`` answers it before the
  client's attempt ends: it waits for the stopped owner until FORWARD_LEAD before the
  deadline, then applies the write itself (before: ``peer_request_timeout``, 2 s, past a
  1 s attempt; the client gave up on it and its fallback was refused as late).
* The copy it sent the owner carries the end of that wait as its deadline: an owner that
  resumes after the forwarder applied the write and answered (but before the client's
  own deadline) refuses it, instead of applying it with a newer stamp than the client's
  next write (a deregistration through another node): no zombie instance.

A failing scenario prints its seed; ``MESHREG_SIM_TRACE=/tmp/trace.txt`` writes its trace.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest

from meshreg.core.requests import DEADLINE_SLACK, FORWARD_MARGIN

sys.path.insert(0, os.path.dirname(__file__))

from network import Network  # noqa: E402
from test_distro_sim import scenario_message, start_cluster  # noqa: E402
from test_runtime_sim import WHERE, listed, owned_by, register_fields, request  # noqa: E402

ATTEMPT = 1.0  # s; the Python client's default attempt_timeout


def deadline_ms(net: Network, attempt: float) -> int:
    """An attempt's deadline as the Python client stamps it (the simulation's clocks
    have no skew here: a node's wall clock is the simulated clock)."""
    return round((net.now + attempt + DEADLINE_SLACK) * 1000)


def state_of(net: Network, node_id: str, of: str) -> str:
    out = request(net, net.nodes[node_id], "cluster")
    net.run_until(net.now + 0.05)
    assert out and out[0][0] == "ok", out
    return next(m["state"] for m in out[0][1]["members"] if m["id"] == of)


@pytest.mark.parametrize("seed", [131, 132, 133])
def test_a_forward_to_a_stopped_owner_is_answered_within_the_clients_attempt(seed: int) -> None:
    net = start_cluster(seed, 3)
    net.run_until(5.0)
    service = owned_by(net, "n1")[0]
    net.pause("n1")  # SIGSTOP: its connections stay up, nothing answers
    sent_at = net.now
    fields = {**register_fields(service, 3), "deadline": deadline_ms(net, ATTEMPT)}
    reply = request(net, net.nodes["n2"], "register", **fields)
    net.run_until(sent_at + ATTEMPT - FORWARD_MARGIN / 2)  # before the client moves on
    problems = []
    if [s for s, _ in reply] != ["ok"]:
        problems.append(f"not answered within the client's attempt: {reply}")
    read: list[Any] = []
    while net.now < sent_at + 3.0 and not (read and listed(read[0], 3)):
        read = request(net, net.nodes["n0"], "instances", service=service, **WHERE)
        net.run_until(net.now + 0.1)
    if not read or not listed(read[0], 3):
        problems.append(f"the fallback's write is not replicated within 3 s: {read}")
    if core_late(net, "n2"):
        problems.append("the fallback was refused as late")
    assert not problems, scenario_message(net, "forward within the attempt", problems)


def core_late(net: Network, node_id: str) -> int:
    runtime = net.nodes[node_id].runtime
    assert runtime is not None
    return runtime.core.registry.late_writes


@pytest.mark.parametrize("seed", [134, 135, 136])
def test_a_resumed_owner_refuses_the_copy_its_forwarder_applied(seed: int) -> None:
    """A long client attempt (8 s): n2 waits ``peer_request_timeout`` for the stopped
    owner, applies the register itself and answers; the client deregisters through n0
    once n0 sees the owner down (applied there); the owner resumes within the register's
    own deadline and must not bring the instance back."""
    net = start_cluster(seed, 3)
    net.run_until(5.0)
    service = owned_by(net, "n1")[0]
    net.pause("n1")
    sent_at = net.now
    fields = {**register_fields(service, 4), "deadline": deadline_ms(net, 8.0)}
    reply = request(net, net.nodes["n2"], "register", **fields)
    net.run_until(sent_at + net.cluster.peer_request_timeout + 0.2)
    problems = []
    if [s for s, _ in reply] != ["ok"]:
        problems.append(f"no fallback answer: {reply}")
    while state_of(net, "n0", "n1") != "down":
        assert net.now < sent_at + 10, "n0 never saw the stopped owner down"
    dereg = {**register_fields(service, 4), "deadline": deadline_ms(net, ATTEMPT)}
    dereg.pop("weight")
    answer = request(net, net.nodes["n0"], "deregister", **dereg)
    net.run_until(net.now + 0.3)
    if [s for s, _ in answer] != ["ok"]:
        problems.append(f"the deregistration through n0: {answer}")
    assert net.now < sent_at + 8.0, "the owner must resume within the register's deadline"
    net.resume("n1", "runtime")
    net.run_until(net.now + 3.0)
    for node_id in net.nodes:
        read = request(net, net.nodes[node_id], "instances", service=service, **WHERE)
        net.run_until(net.now + 0.2)
        if not read or listed(read[0], 4):
            problems.append(f"{node_id} lists the deregistered instance: {read}")
    if not core_late(net, "n1"):
        problems.append("the owner did not refuse the forwarded copy as late")
    assert not problems, scenario_message(net, "a resumed owner's stale copy", problems)
