"""F2 (the client's part fixed: a deregister made while a copy of the register may still
be applied goes again after the copies' deadlines (plus COPY_CLOCK_MARGIN), carrying the
stamp its answer told; the late copy can still bring the instance back until then, under
a second; each test below now sends that follow-up as the Python client does and checks
the end state: before the fix, nothing followed and the instance stayed listed).

A register's first attempt (straight to its owner, which stalled) stays valid for
DEADLINE_SLACK past the attempt's end; the second attempt (through the server) is applied
by the server's fallback and answered earlier than that; the client's deregistration then
goes through (OK), and the owner, resuming, applies the first attempt's copy after it: the
deregistered instance is back on every node.  No clock skew, no lost message.

Steps (seeded simulation, 3 nodes, default node timings; the service's owner is n1; the
client's server is n0; the client's ``attempt_timeout`` is 0.5 s (a user setting; a call
``timeout`` of 1.5 s or less does the same: the direct attempt gets half the budget), as the
Python client schedules it (session.py ``_dispatch``/``_send``/``_check_deadlines``):
1. n1's loop stops (SIGSTOP, a VM freeze, a GC pause) at T, for ``stall`` s (< 1 s: not
   even detected as a stall).
2. At T+0.01 the client registers instance 4 straight to n1 (it knows the view): deadline
   = attempt end + DEADLINE_SLACK = T+0.51+0.5.  No answer.
3. At the attempt's end the client forgets the view and sends the register through its
   server n0 (deadline T+1.01+0.5).  n0 forwards it to n1; its wait (deadline -
   FORWARD_LEAD - now = 0.2 s) ends at ~T+0.71: n0 applies the register itself and
   answers OK.
4. The client, told OK, deregisters instance 4, through n0 (its view forgotten): n0
   forwards it to n1 and, n1 silent, applies it itself at the end of its wait, or n1,
   resumed first, applies it: the client is told OK either way.
5. n1 resumes at T+``stall``, before T+1.01 (the first attempt's deadline), and serves
   what waited: the forwards on its peer socket (read first), then the first attempt's
   register on its client socket, still within its deadline.

What happens: n1 applies the register of step 2 after the deregistration of step 4, with
a newer stamp, and replicates it: instance 4, deregistered and acknowledged, is listed on
every node (until evicted as silent, 30 s; its provider is gone).  The client never hears
of it: the reply to the first attempt is dropped (that request was answered by the second
attempt), and its deregister was answered OK after the register's OK, so nothing is
"withdrawn" and no undo (session.py ``_undo_if_last_word``) is sent.

Why: every attempt of one write carries its own deadline (its end + 0.5 s) and stays
valid until then wherever it waits; the forwarder's fallback answers the *second* attempt
``FORWARD_LEAD`` (0.8 s) before *its* deadline, which is before the first attempt's
deadline whenever the second attempt is shorter than 0.8 s (the fallback's answer at
T + a1 + max(0.1, a2 - 0.3) < the first copy's deadline T + a1 + 0.5).  The client's
next write is made inside a window in which an earlier copy of its previous write can
still be applied after it.  At the defaults (3 s,
1 s attempts) the fallback answers 0.2 s after the first copy's deadline: safe by 0.2 s
(the control case).

What should happen: PROTOCOL.md 2.1 "Deadline": no copy of a write is applied after the
client's next write; a deregistration acknowledged stays.
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from r72lib import (  # noqa: E402
    Network,
    cluster,
    deadline_ms,
    held,
    owned_by,
    register_fields,
    request,
    run_until_true,
    runtime,
    scenario_message,
)

from meshreg.client.session import COPY_CLOCK_MARGIN  # noqa: E402
from meshreg.core.requests import DEADLINE_SLACK  # noqa: E402

COPY_WINDOW = DEADLINE_SLACK  # a copy is void at its attempt's end plus this


def follow_up(
    net: Network, via: str, dereg: dict, copies_void: float, gone: list, attempt: float
) -> None:
    """What the Python client does since the fix (session.py ``_undo_at``): the
    deregistration goes again once no copy of the register can be applied (the latest
    copy's deadline plus COPY_CLOCK_MARGIN), after the stamp its first answer told."""
    net.run_until(max(net.now, copies_void + COPY_CLOCK_MARGIN))
    again = {**dereg, "after": gone[0][1]["stamp"], "deadline": deadline_ms(net, attempt)}
    answer = request(net, net.nodes[via], "deregister", **again)
    run_until_true(net, lambda: bool(answer), net.now + 2.0)
    assert [status for status, _ in answer] == ["ok"], answer


@pytest.mark.parametrize(
    ("attempt", "stall"),
    [
        (1.0, 1.90),  # control: the defaults (timeout 3 s, attempt 1 s): safe
        (0.5, 0.80),  # n1 resumes before n0's wait for the deregistration ends (fails)
        # (passes) after it: n0 applied the deregistration itself, and its delta carried
        # the register's fallback copy to n1 first: the first attempt's register then
        # finds an equal record and only refreshes its beat (store.py ``register``: no
        # new stamp), so the tombstone stays newer
        (0.5, 0.95),
    ],
)
def test_a_first_attempts_copy_is_applied_after_the_acknowledged_deregistration(
    attempt: float, stall: float
) -> None:
    net = cluster(7202, {})
    net.run_until(6.0)
    service = owned_by(net, "n1")[0]
    start = net.now
    net.pause("n1")
    net.run_until(start + 0.01)
    fields = register_fields(service, 4)
    first = request(net, net.nodes["n1"], "register", **fields, deadline=deadline_ms(net, attempt))
    net.run_until(net.now + attempt)
    assert not first, first
    second = request(net, net.nodes["n0"], "register", **fields, deadline=deadline_ms(net, attempt))
    run_until_true(net, lambda: bool(second), start + stall - 0.02)
    assert [status for status, _ in second] == ["ok"], second
    assert runtime(net, "n0")._peers.forward_failures == 1, "setup: n0 applied it itself"
    copies_void = net.now + attempt + COPY_WINDOW  # (the second copy's deadline, the later)
    dereg = {**register_fields(service, 4), "after": second[0][1]["stamp"]}
    dereg.pop("weight")
    gone = request(net, net.nodes["n0"], "deregister", **dereg, deadline=deadline_ms(net, attempt))
    net.run_until(start + stall)
    net.resume("n1", "runtime")
    run_until_true(net, lambda: bool(gone), net.now + 2.0)
    problems = []
    if [status for status, _ in gone] != ["ok"]:
        problems.append(f"the deregistration's answer: {gone}")
    follow_up(net, "n0", dereg, copies_void, gone, attempt)
    net.run_until(net.now + 2.0)
    for node_id in net.nodes:
        if held(net, node_id, service, 4):
            problems.append(
                f"{node_id} lists instance 4: deregistered (acknowledged) after its register's "
                f"OK; the register's first attempt (to n1, stalled {stall:g} s) applied after"
            )
    assert not problems, scenario_message(net, "first attempt's copy", problems)


@pytest.mark.parametrize("stall", [1.3, 1.45])
def test_a_register_held_by_a_stalled_server_is_applied_after_the_acknowledged_deregistration(
    stall: float,
) -> None:
    """The same at the Python client's defaults (timeout 3 s, attempt 1 s), through a
    failover: the client's server n0 (not the owner) stalls with the register in its
    client socket; at the attempt's end (1 s) the client fails over to n2, which forwards
    it to the owner n1 (alive): OK in ms.  The caller deregisters at once, through n2: OK.
    n0 resumes at ``stall`` (< 1.5 s, the first attempt's deadline), reads the register,
    still valid, and forwards it to n1 (copy deadline min(1.5, now + FORWARD_MIN_WAIT)),
    which applies it after the deregistration, with a newer stamp: the instance is back on
    every node.  No clock skew, no short setting; only a server that stalls 1.3 s (a GC
    pause, a VM freeze) while the client fails over."""
    net = cluster(7203, {})
    net.run_until(6.0)
    service = owned_by(net, "n1")[0]
    attempt = 1.0
    start = net.now
    net.pause("n0")
    net.run_until(start + 0.01)
    fields = register_fields(service, 4)
    first = request(net, net.nodes["n0"], "register", **fields, deadline=deadline_ms(net, attempt))
    net.run_until(net.now + attempt)  # no answer: the client fails over to n2
    second = request(net, net.nodes["n2"], "register", **fields, deadline=deadline_ms(net, attempt))
    copies_void = net.now + attempt + COPY_WINDOW
    run_until_true(net, lambda: bool(second), net.now + 0.1)
    assert [status for status, _ in second] == ["ok"], second
    dereg = {**register_fields(service, 4), "after": second[0][1]["stamp"]}
    dereg.pop("weight")
    gone = request(net, net.nodes["n2"], "deregister", **dereg, deadline=deadline_ms(net, attempt))
    run_until_true(net, lambda: bool(gone), net.now + 0.1)
    assert [status for status, _ in gone] == ["ok"], gone
    net.run_until(start + stall)
    net.resume("n0", "runtime")
    follow_up(net, "n2", dereg, copies_void, gone, attempt)
    net.run_until(net.now + 2.0)
    problems = [f"the stalled server's answer to the first attempt: {first}"]
    for node_id in net.nodes:
        if held(net, node_id, service, 4):
            problems.append(
                f"{node_id} lists instance 4: deregistered (acknowledged) after its register's "
                f"OK; the first attempt, held by n0 (stalled {stall:g} s), applied after"
            )
    assert problems[1:] == [], scenario_message(net, "stalled server's register", problems)
