"""review44 F2: a version written by a node whose clock runs AHEAD (20 s here; the cluster
keeps a node up to 30 s off) and never acknowledged (outcome unknown) settles only 2.5 s
PLUS that lead after it was written, on every node, the writer itself included.  Until
then a compare-and-set at the revision readers show is refused ``cas_in_flight``
("retry in a moment (it settles within 2.5 s)") and every read shows the revision below:
a read-then-CAS loop spins for about 22.5 s instead of 2.5 s.

docs/CONFIG.md ("When a node shows a version ..."): a version no majority acknowledged is
shown "once it was written SETTLE_SECONDS (2.5 s) ago: the owner answers within its 2 s ack
timeout, so such a version's write ended 'outcome unknown'" and "'2.5 s ago' is by the
cluster's clock: `modified` is the writer's wall clock".  The error itself promises "it
settles within 2.5 s" (configcenter/core.py ``_check_settled``).

Why: ``modified`` is stamped with the writer's clock (20 s ahead).  review42 F2's fix
subtracts the READER's lead (``ConfigStore.shown`` / ``_check_settled``: ``now -
clock_lead``), which on the writer itself cancels its own clock and leaves ``modified``
20 s in the future; on the right-clocked peers nothing is subtracted at all.

Five nodes (majority 3).  n1 owns the data id, its clock +20 s.  ``publish v1`` is
acknowledged; the acks to n1 are dropped (iptables on its peer ROUTER port P+3) and
``publish v2`` ends "outcome unknown" at 2 s; the rule is removed.  A client on n3 then
loops: read, ``publish v3 if_revision=<revision read>``, retry on cas_in_flight/CONFLICT.
Expected: the loop is through (v3 acknowledged) within 2.5 s + a few seconds of the
unknown outcome.  Seen: see the write-up (review44.md F2).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from r44lab import PORT, Lab44, keep_workdir, skew_params, skip_reason, undrop, wait

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason())),
]

SKEW = 20.0  # s ahead: below the 30 s at which a node is counted out
BOUND = 8.0  # s after the unknown outcome: 2.5 s settle, then a CAS write or two


@pytest.mark.timeout(180)
@pytest.mark.parametrize(**skew_params(SKEW, "owner-20s-ahead"))
def test_cas_after_an_unknown_outcome_of_a_writer_ahead_settles_in_time(
    tmp_path: Path, skew: float
) -> None:
    lab = Lab44(tmp_path / "lab", n=5, peer_timeout=2.0)
    lab.skew = {0: skew} if skew else {}
    ok = False
    try:
        lab.up_nodes(range(5))
        data_id = next(f"r44-ahead-{i}" for i in range(200) if lab.owner(f"r44-ahead-{i}") == 0)
        writer = lab.repl44(0, [0], data_id)
        assert writer("publish v1")["ok"]
        cas = lab.repl44(2, [2], data_id, timeout=1.0)  # short: the loop's own steps count
        assert wait(lambda: cas("get").get("rev") == 1, 10), lab.events
        rule = ["INPUT", "-i", "eth0", "-p", "tcp", "--dport", str(PORT + 3), "-j", "DROP"]
        lab.drop(0, rule)
        second = writer("publish v2")
        assert second.get("error") == "OutcomeUnknownError", second  # the setup held
        undrop(lab, 0, rule)
        unknown_at = time.monotonic()
        lab.ev("v2: outcome unknown; acks to n1 flow again")
        answers: dict[str, int] = {}
        done: dict[str, object] = {}
        trail: list[tuple[float, int, str, str]] = []

        def step() -> bool:
            got = cas("get")
            seen = got.get("rev", 0) if got.get("ok") else 0
            out = cas(f"publish v3 {seen}")
            key = "ok" if out.get("ok") else (out.get("reason") or out.get("error") or "?")
            if "cas_in_flight" in str(out.get("msg", "")):
                key = "cas_in_flight"
            answers[key] = answers.get(key, 0) + 1
            trail.append((round(time.monotonic() - unknown_at, 2), seen, key, str(out)[:260]))
            if out.get("ok"):
                done.update(out, at=round(time.monotonic() - unknown_at, 2), read=seen)
                return True
            return False

        wait(step, 40, step=0.2)
        lab.ev(f"CAS loop: {answers}; done {done}; trail {trail}")
        print(lab.events)
        assert done, f"the CAS loop never got through in 40 s: {answers}"
        assert done["at"] <= BOUND, (
            f"a read-then-CAS loop got through only {done['at']} s after the unknown outcome "
            f"(bound {BOUND} s; answers {answers}; the writer's clock {skew:+g} s)"
        )
        ok = True
    finally:
        if not ok:
            keep_workdir(tmp_path / "lab", "/tmp/r44/failed")
        lab.close()


@pytest.mark.timeout(180)
def test_cas_on_a_new_owner_behind_settles_in_time(tmp_path: Path) -> None:
    """The mirror case: the writer's clock is right, the node that takes the data id over
    after the writer dies is 20 s BEHIND.  ``ConfigStore.clock_lead`` is clamped at >= 0
    (runtime/config_plane.py ``_take_clock_lead``), so the new owner judges the unknown
    outcome settled only 2.5 s + 20 s after it was written, and refuses a CAS at the
    revision its readers are shown (``cas_in_flight``) until then.  Five nodes; n1 owns the
    data id, n2 (-20 s) owns it among n2..n5.  v2 ends "outcome unknown" (acks to n1
    dropped); n1 is SIGKILLed; a client on n2 loops read, CAS at the revision read.
    Expected: through within 8 s of n1's death (failover, then the 2.5 s settle)."""
    lab = Lab44(tmp_path / "lab", n=5, peer_timeout=1.0)
    lab.skew = {1: -20.0}
    ok = False
    try:
        lab.up_nodes(range(5))
        data_id = next(
            d
            for d in (f"r44-newowner-{i}" for i in range(400))
            if lab.owner(d) == 0 and lab.owner_among(d, [1, 2, 3, 4]) == 1
        )
        writer = lab.repl44(0, [0], data_id)
        assert writer("publish v1")["ok"]
        cas = lab.repl44(1, [1], data_id, timeout=1.0)
        assert wait(lambda: cas("get").get("rev") == 1, 10), lab.events
        rule = ["INPUT", "-i", "eth0", "-p", "tcp", "--dport", str(PORT + 3), "-j", "DROP"]
        lab.drop(0, rule)
        second = writer("publish v2")
        assert second.get("error") == "OutcomeUnknownError", second
        lab.kill(0)
        dead_at = time.monotonic()
        trail: list[tuple[float, int, str]] = []
        done: dict[str, object] = {}

        def step() -> bool:
            got = cas("get")
            seen = got.get("rev", 0) if got.get("ok") else 0
            out = cas(f"publish v3 {seen}")
            msg = str(out.get("msg", ""))
            key = "ok" if out.get("ok") else str(out.get("error"))
            if "cas_in_flight" in msg or "is being written" in msg:
                key = "cas_in_flight"
            trail.append((round(time.monotonic() - dead_at, 2), seen, key))
            if out.get("ok"):
                done.update(out, at=round(time.monotonic() - dead_at, 2))
                return True
            return False

        wait(step, 45, step=0.2)
        lab.ev(f"CAS loop on n2 (-20 s): {trail}; done {done}")
        print("\n".join(map(str, lab.events)))
        assert done, f"never through in 45 s: {trail}"
        assert done["at"] <= 8.0, (
            f"a read-then-CAS loop on the new owner (20 s behind) got through only "
            f"{done['at']} s after the old owner died: {trail}"
        )
        ok = True
    finally:
        if not ok:
            keep_workdir(tmp_path / "lab", "/tmp/r44/failed")
        lab.close()
