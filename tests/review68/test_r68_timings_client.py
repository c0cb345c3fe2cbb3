"""review68 F1 and F3: the client learning a node's ``unhealthy_after`` (sans-IO harness).

F1 (low-medium): ``_ask_timings`` runs on a change of server only (``_failover`` when the
next server is another one, ``_switch_to``).  A client given ONE server whose node
restarts (with a lower ``--unhealthy-after``: the first node of a rolling restart, or a
node restarted alone) is never asked at once: the loop reports the disconnect
(``server_disconnected``: nothing done with one server) and the reconnect's handshake
(``server_handshaken``), and an attempt timing out meanwhile fails over to the same
server (``self.server == old``: no ask).  The client learns the new value at its next
regular renewal, up to one old interval (5 s) later, while the restarted node judges by
3 s from its grace start: the window the change of server was fixed for (CI 2026-12-06),
left open for the single-server client.  Expected: a reconnect after a disconnect of the
same server (or a failover to the same server) asks too (rate-limited as now).

F3 (low): the warning ``_learn_timings`` writes still says "meshreg server X marks
instances unhealthy after Ns without a beat (its unhealthy_after) ... or raise the node's
unhealthy_after".  Since item 4 the value is the least of the members X hears: X's own
may be 15 s (its ``stats.timings`` say so), and the operator looking at X finds nothing
to raise.  Expected: the text says it is the cluster's least (the members' lowest), not X's.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "client"))

from session_harness import Handle, Harness, registration  # noqa: E402
from test_client_session_liveness import opened_with  # noqa: E402

from meshreg.client.commands import RegisterBatch  # noqa: E402


def test_a_single_server_restart_asks_its_timings_at_the_reconnect() -> None:
    h = Harness(servers=("a:1",), beat_ms=5000, session=True)
    opened_with(h, 15.0)
    assert h.core.beat_every == 5.0
    h.advance(5000)  # a regular renewal, answered
    h.answer_all("session_renew", {"instances": 1, "unhealthy_after": 15.0})
    h.answer_view()
    h.advance(500)  # between two renewals: none in flight
    start = len(h.sent)
    h.run(h.core.server_disconnected(h.now))  # a:1 stops (restarted with 3 s)
    h.advance(800)
    h.core.server_handshaken()  # the restarted a:1 accepts the connection again
    h.advance(200)
    asked = [s for s in h.sent[start:] if s.op in ("session_renew", "ping")]
    assert asked, (
        "the reconnect to a restarted single server asks nothing: the next renewal comes "
        f"{h.core._next_beat - h.now:.1f}s later, at the old pace"
    )


def test_a_failover_to_the_same_server_asks_its_timings() -> None:
    """The same through an attempt timing out while the node restarts (here the cluster
    registration's batch, unanswered): ``_failover`` reconnects to the same server (one in
    the list) and asks nothing; the renewals keep their old 5 s pace."""
    h = Harness(servers=("a:1",), beat_ms=5000, attempt_ms=500, session=True)
    opened_with(h, 15.0)
    h.advance(5000)
    h.answer_all("session_renew", {"instances": 1, "unhealthy_after": 15.0})
    h.answer_view()
    h.advance(500)
    connects, start = len(h.connects()), len(h.sent)
    h.do(RegisterBatch(((registration(1, True), Handle()),), 5.0))  # a:1 restarting: unanswered
    for _ in range(20):
        h.advance(100)
        if len(h.connects()) > connects:
            break
    assert len(h.connects()) > connects, "no failover to the same server happened"
    at = h.now
    h.advance(100)
    asked = [s for s in h.sent[start:] if s.op in ("session_renew", "ping")]
    assert asked, (
        f"failover to the same server at {at:.1f}s asked nothing; next renewal in "
        f"{h.core._next_beat - h.now:.1f}s"
    )


def test_the_beat_interval_warning_does_not_pin_the_cluster_s_least_on_the_server() -> None:
    h = Harness(servers=("a:1",), beat_ms=5000, session=True)
    opened_with(h, 3.0)  # a:1 runs 15 s; a member it hears runs 3 s (advised_unhealthy)
    (line,) = [t for t in h.logs("warning") if "unhealthy after" in t]
    assert "(its unhealthy_after)" not in line and "raise the node's" not in line, line
