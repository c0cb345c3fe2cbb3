"""F4: a forward "orphaned" by a view change is applied by the forwarder at once, while the
copy it sent the owner stays valid until the end of the forward's wait; the owner, slow
but alive, applies that copy later, over the client's next write: a deregistered instance
comes back on every node.

Steps (seeded simulation, 3 nodes, default timings: peer_timeout 3 s; the service's
owner is n1; the client's attempt 2 s, so a forward waits min(2 s, deadline - 0.8 s) =
1.7 s and the copy sent the owner carries that wait's end as its deadline):
1. n1 stops (SIGSTOP, a VM freeze, a long GC pause) at T.
2. At T + 1.5 a client registers instance 4 through n2: n2 forwards it to n1 (copy
   deadline T + 3.2).
3. n2 counts n1 down (its beacons stopped: T + 2.5 .. 3.0).  ``NodeRuntime._expire``
   takes the forward out as orphaned (``PeerLinks.orphaned``) and applies it on n2
   (``_fall_back``): the client hears OK.
4. The client deregisters instance 4 through n2: applied by the service's new owner, OK.
5. n1 resumes at T + 3.15, before its copy's deadline, and serves what waited.

What happens: n1 applies the register copy (its deadline has not passed) with a stamp
newer than the deregistration's, and replicates it: instance 4, deregistered and
acknowledged, is listed again on every node (a zombie, until it is evicted as silent).

What should happen: core/distro ``_copy_deadline``: the copy's deadline exists so that
"a stopped owner that resumed after this node applied the write itself and answered ...
would [not] still apply its copy, with a newer stamp than the client's next write (a
deregistration)"; PROTOCOL.md 2.1 "Deadline" (a late copy "would undo the client's later
writes (a deregistration returned, then the late register brings the instance back)").
A forwarder that applies a write itself before its copy's deadline has passed (the
orphaned path) leaves that guarantee open: the copy must be void by then (the copy's
deadline no later than the moment the forwarder may apply it itself, or the orphaned
forward kept until the copy's deadline).

After the fix (kept until its deadline unless the owner said it was stopping), step 3
no longer answers: the forward waits; n1 resumed before the copy's deadline applies the
copy and answers (relayed), or, resumed after it, refuses the copy while n2 applies the
register itself at the end of its wait.  The test now waits for the register's answer
before the deregistration (a client's next write), in both orders.
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

ATTEMPT = 2.0  # s; a client's attempt_timeout


def held(net, node_id: str, service: str) -> bool:  # type: ignore[no-untyped-def]
    out = request(net, net.nodes[node_id], "instances", service=service, **WHERE)
    net.run_until(net.now + 0.05)
    assert out and out[0][0] == "ok", out
    return listed(out[0], 4)


@pytest.mark.parametrize("resume_at", [3.15, 3.5])  # before, after the copy's deadline
@pytest.mark.parametrize("seed", [7131, 7132])
def test_orphaned_forward_copy_brings_a_deregistered_instance_back(
    seed: int, resume_at: float
) -> None:
    net = start_cluster(seed, 3)
    net.run_until(5.0)
    service = owned_by(net, "n1")[0]
    owner_address = net.nodes["n1"].address
    paused_at = net.now
    net.pause("n1")
    net.run_until(paused_at + 1.5)
    fields = {**register_fields(service, 4), "deadline": deadline_ms(net, ATTEMPT)}
    reg = request(net, net.nodes["n2"], "register", **fields)
    core2 = runtime(net, "n2").core
    run_until_true(
        net,
        lambda: all(p.address != owner_address for p in core2.membership.up_peers()),
        paused_at + 3.15,
        0.005,
    )
    net.run_until(net.now + 0.01)
    assert net.now < paused_at + 3.15, f"setup: too late ({net.now - paused_at:.2f})"
    problems = []

    def deregister() -> list:
        dereg = {**register_fields(service, 4), "deadline": deadline_ms(net, ATTEMPT)}
        dereg.pop("weight")
        out = request(net, net.nodes["n2"], "deregister", **dereg)
        run_until_true(net, lambda: bool(out), net.now + 2.5, 0.005)
        return out

    early = bool(reg)
    if early:  # (the bug) the client's next write follows the answer at once
        problems.append(f"n2 answered the register ({reg}) before its copy's deadline")
        gone = deregister()
    net.run_until(paused_at + resume_at)  # the copy's deadline: T + 1.5 + 1.7
    net.resume("n1", "runtime")
    run_until_true(net, lambda: bool(reg), net.now + 1.0, 0.005)
    if [s for s, _ in reg] != ["ok"]:
        problems.append(f"the register's answer: {reg}")
    if not early:
        gone = deregister()
    if [s for s, _ in gone] != ["ok"]:
        problems.append(f"the deregistration's answer: {gone}")
    net.run_until(net.now + 3.0)
    for node_id in net.nodes:
        if held(net, node_id, service):
            problems.append(f"{node_id} lists instance 4, deregistered (acknowledged) before")
    assert not problems, scenario_message(net, "orphaned forward's copy", problems)
