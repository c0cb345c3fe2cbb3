"""F-C, node side (the client's part fixed: a register made while a copy of the instance's
deregister may still apply is sent again once every such copy is void, plus
COPY_CLOCK_MARGIN; this test sends that follow-up as the Python client now does and checks
the end state; before the fix nothing followed and the instance stayed removed until the
next beat's NOT_FOUND).

A deregister attempt held by a stalled server is applied after the
client's acknowledged register of the same instance (review72 F2's scenario, the other
order; review72's fix guards only a register's copies).

Steps (seeded simulation, 3 nodes, default node timings, owner n1, the Python client's
defaults: timeout 3 s, attempt 1 s; its server n0):
1. Instance 4 is registered (through n1: OK).
2. n0 stops (a GC pause, SIGSTOP) at T; at T+0.01 the client deregisters through n0
   (deadline T+1.51).  No answer.
3. At the attempt's end the client fails over to n2: the deregister is forwarded to n1,
   OK.  The caller registers the instance again at once (a restart of the component, a
   ``register`` after a drain's ``deregister``), through n2, carrying the deregister's
   stamp as ``after``: OK.
4. n0 resumes at T+1.3 (< T+1.51) and serves the deregister, still within its deadline:
   forwarded to n1, applied with a newer stamp.

What happens: the instance, registered (acknowledged) after its deregistration, is
listed by no node.  The client sends nothing after the copy's deadline (session.py only
re-sends deregisters: ``_undo_at``); it notices at its next beat's NOT_FOUND (up to
``beat_interval``, 5 s) or after ``SHORT_RENEWALS`` short session renewals, and
registers again then.  (The test checks 1.5 s after the resume: before the first beat.)
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from r73lib import (  # noqa: E402
    cluster,
    deadline_ms,
    held,
    owned_by,
    register_fields,
    request,
    run_until_true,
    scenario_message,
)

from meshreg.client.session import COPY_CLOCK_MARGIN  # noqa: E402
from meshreg.core.requests import DEADLINE_SLACK  # noqa: E402


@pytest.mark.parametrize("stall", [1.3, 1.45, 1.7])
def test_r73_a_deregister_held_by_a_stalled_server_removes_the_later_registration(
    stall: float,
) -> None:
    """``stall`` 1.7: control (the copy is past its deadline when n0 reads it)."""
    net = cluster(7303, {})
    net.run_until(6.0)
    service = owned_by(net, "n1")[0]
    attempt = 1.0
    fields = register_fields(service, 4)
    reg = request(net, net.nodes["n1"], "register", **fields, deadline=deadline_ms(net, attempt))
    run_until_true(net, lambda: bool(reg), net.now + 0.5)
    assert [s for s, _ in reg] == ["ok"], reg
    net.run_until(net.now + 0.5)
    start = net.now
    net.pause("n0")
    net.run_until(start + 0.01)
    dereg = dict(fields, after=reg[0][1]["stamp"])
    dereg.pop("weight")
    first = request(net, net.nodes["n0"], "deregister", **dereg, deadline=deadline_ms(net, attempt))
    net.run_until(net.now + attempt)  # no answer: the client fails over to n2
    later = deadline_ms(net, attempt)
    second = request(net, net.nodes["n2"], "deregister", **dereg, deadline=later)
    run_until_true(net, lambda: bool(second), net.now + 0.1)
    assert [s for s, _ in second] == ["ok"], second
    again = dict(fields, after=second[0][1]["stamp"])
    back = request(net, net.nodes["n2"], "register", **again, deadline=deadline_ms(net, attempt))
    run_until_true(net, lambda: bool(back), net.now + 0.1)
    assert [s for s, _ in back] == ["ok"], back
    answered = net.now - start
    net.run_until(start + stall)
    net.resume("n0", "runtime")
    # what the Python client does since the fix (session.py ``_after_dereg_copies``): the
    # register goes again once the first deregister copy is void (+ COPY_CLOCK_MARGIN)
    copy_void = start + 0.01 + attempt + DEADLINE_SLACK
    net.run_until(max(net.now, copy_void + COPY_CLOCK_MARGIN))
    redo = dict(fields, after=back[0][1]["stamp"], deadline=deadline_ms(net, attempt))
    redone = request(net, net.nodes["n2"], "register", **redo)
    run_until_true(net, lambda: bool(redone), net.now + 0.5)
    net.run_until(net.now + 1.5)
    problems = []
    for node_id in net.nodes:
        if not held(net, node_id, service, 4):
            problems.append(
                f"{node_id} does not list instance 4, registered again (acknowledged at "
                f"{answered:.3f} s) after its deregistration; the deregister's first attempt, "
                f"held by n0 (stalled {stall:g} s; its answer {first}), applied after it"
            )
    assert not problems, scenario_message(net, "stalled server's deregister", problems)
