"""F4 (review75): a register made while its service's owner and another node lose part of
each other's messages (one-way loss ~30-50 %, test_faults_sim's "one-way loss", which
faults no node) is missing on that node for most of the loss: 4.6 s, 2.7 s and 11.6 s
(loss-short seeds 12, 3, 6) although a third node held it the whole time, repaired only
0.07-2.5 s after the loss ends.  Replays of the sweep's seeds (r75scen ``loss-short``:
3 nodes, short timings, real client sessions registering, deregistering and registering
again during the loss).

Why (from the traces): the register is applied by the owner and its delta to that node
lost; only the owner's digests (each node lists what it owns) and the rounds with it can
repair it, over the lossy link, and the rounds back off after failures (core/distro.py
``_on_digest``, ``_round_backoff``); the node that holds it (not the owner) never offers
it.  Before: test_faults_sim's one-way loss cases register nothing during the loss.
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from r75scen import message, run  # noqa: E402

# Seed 12 (the session client's own server lacked the instance; the "holds fewer" redo
# went straight to the owner, a repeat there): fixed, the redo goes through the server.
# Seed 6 (a node that is not the client's server lacks it, 11.6 s: six rounds with the
# owner failed in a row, each lost call costing its 2 s timeout and a backoff): fixed in
# review79, a round's call unanswered for a quarter of its timeout is sent again
# (core/distro ``_resend``; tests/core/test_round_resend.py).


@pytest.mark.timeout(60)
@pytest.mark.parametrize("seed", [6, 12])
def test_f4_a_register_during_one_way_loss_stays_missing_on_a_node_for_seconds(seed: int) -> None:
    rs, problems = run("loss-short", seed)
    live = [p for p in problems if p.startswith("(a)")]
    assert not live, message(rs, "loss-short", seed, live)
