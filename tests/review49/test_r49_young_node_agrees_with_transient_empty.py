"""review49 F2 (low): review48 F5's relaxation ("a young node caught up from its peers
that agrees with an empty list a trusted node gave is believed", session.py ``_pulled``
``agrees``) lets a consumer drop a LIVE instance for a moment when the provider's node
restarts.

Steps: 3 nodes A, B, C (short timings); a provider (`meshreg register`, a separate
process) on B; consumers on A (servers [A, B] and [A, B, C]).  The provider is paused
(SIGSTOP, 2.5 s - below the 3 s unhealthy timing) while B is killed and started again at
once (a crash and restart).  On SIGCONT the provider registers again (a new session):
A pushes the old session's removal (would empty the list) and then the new instance;
the consumer's empty protection asks the next server for a second opinion - B, young,
caught up from its peers, still empty - and now believes it: the subscription callback
is called with [] and then with the instance again (both callbacks within 10 ms).
INTERMITTENT.  Measured on this commit: 4 of 94 rounds (one-round scripts after 17 s of
table age: 2 of 9; this test without the settle: 1 of 72 over 4 runs; with the 16 s
settle: failed in round 1 once, passed 12 rounds once).  On 7d539ff (before the change,
where a young B's answer that drops instances was held): 0 of 31 rounds (9 scripts, this
test 10 rounds unsettled and 12 settled).  The before/after difference is not
statistically conclusive at these rates; the code path (the new ``agrees`` branch is the
only way a young node's empty answer is taken) is what ties it to the change.  This test
fails in roughly 1 run of 2 to 4.
Nacos' push-empty protection and Consul's blocking queries never
hand an application an empty list for a service whose only instance stayed registered
and healthy throughout.

Later (session 32): the recorder keeps the HEALTHY addresses, and 2.5 s paused after a
beat up to 0.5 s old reaches the 3 s unhealthy timing: CI's failure on 49566a4 was the
owner marking the instance unhealthy (correctly) 10 ms before the resumed provider's
beat; the measurements above may hold such rounds too.  The pause is now 2.0 s, and a
failure prints whether the instance was absent or listed unhealthy.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time

import pytest
from helpers import meshreg_cmd
from r49lib import Recorder, client, new_nodes, running, wait_ready, wait_until

ROUNDS = 4  # (suite time: ~90 s; about 2 settled rounds in 9 showed it before the fix)
SETTLE = 16.0  # s every table ages before a round (past the 15 s young-node grace), as
# in the scripts that showed it 2 times in 9
BEAT = 0.5  # s between the provider's beats (its session renewals)
# s the provider is paused: its last beat was up to BEAT before, so the owner goes up to
# PAUSE + BEAT without one, under the 3 s unhealthy timing.  The reviewer's 2.5 s left
# no margin: CI on 49566a4 failed when the owner marked the instance unhealthy at 3 s
# and the resumed provider's beat made it healthy 10 ms later (replayed with 2.7 s: the
# consumers were called with the instance unhealthy, then healthy; a correct push)
PAUSE = 2.0


@pytest.mark.timeout(600)
def test_consumer_never_sees_an_empty_list_for_a_live_instance() -> None:
    nodes = new_nodes(3, tempfile.mkdtemp(prefix="r49-f2-"))
    a, b, c = nodes
    prov = None
    consumers = []
    try:
        with running(nodes):
            for n in nodes:
                wait_ready(n)
            prov = subprocess.Popen(
                meshreg_cmd("register", "svc", "10.49.0.1:1", "--beat-interval", str(BEAT),
                            "-s", b.address),  # fmt: skip
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            consumers = [client([a.address, b.address]), client([a.address, b.address, c.address])]
            recs = [Recorder() for _ in consumers]
            listed: list[list[tuple[float, list[tuple[str, bool]]]]] = [[] for _ in consumers]
            for cl, r, seen in zip(consumers, recs, listed, strict=True):
                cl.subscribe("svc", r)
                cl.subscribe("svc", lambda xs, seen=seen: seen.append(
                    (time.monotonic(), [(i.address, i.healthy) for i in xs])))  # fmt: skip
            want = {"10.49.0.1:1"}
            wait_until(lambda: all(r.last() == want for r in recs), 15, what="listed")
            for k in range(ROUNDS):
                settle = time.monotonic() + SETTLE
                while time.monotonic() < settle:  # (the tables' age is the condition)
                    time.sleep(0.2)
                t0 = time.monotonic()
                os.killpg(prov.pid, signal.SIGSTOP)
                try:
                    b.kill()  # B crashes and is started again at once
                    b.launch(b.peers)
                    deadline = t0 + PAUSE  # the fault's own length
                    while time.monotonic() < deadline:
                        time.sleep(0.05)
                finally:
                    os.killpg(prov.pid, signal.SIGCONT)
                wait_ready(b, 30)
                wait_until(lambda: b.listing("svc") == {"10.49.0.1:1": True}, 15,
                           what="provider registered again on B")  # fmt: skip
                wait_until(lambda: all(r.last() == want for r in recs), 15, what="listed again")
                empties = [
                    (i, round(t - t0, 2))
                    for i, r in enumerate(recs)
                    for t, s in list(r.events)
                    if t >= t0 and not s
                ]
                if empties:
                    since = [  # (address, healthy): absent, or listed unhealthy
                        [(round(t - t0, 2), xs) for t, xs in seen if t >= t0] for seen in listed
                    ]
                    pytest.fail(
                        f"round {k + 1}: the provider stayed registered (paused {PAUSE} s, "
                        f"{PAUSE + BEAT} s at most without a beat < the 3 s unhealthy timing) "
                        f"while its node B crashed and restarted, yet "
                        f"consumers were called with no healthy instance (consumer, s after the "
                        f"crash): {empties}; every callback since: "
                        f"{since}"
                    )
    finally:
        if prov is not None:
            try:
                os.killpg(prov.pid, signal.SIGCONT)
                os.killpg(prov.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            prov.wait(10)
        for cl in consumers:
            try:
                cl.close(1)
            except Exception:  # noqa: BLE001
                pass
