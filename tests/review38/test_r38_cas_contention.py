"""review38: Jepsen-style compare-and-set under contention, with the owner faulted.

docs/CONFIG.md: "Compare-and-set on every write: if_revision 0 = the data id must not
exist (or be deleted); N = it must be at exactly revision N"; "Each node acknowledges at
most one version per (data id, revision) ... so at most one version per revision can be
committed"; "A client carries the highest revision it has seen per data id ... the client
never steps backwards".  Six writer processes (public Client) on three nodes increment a
counter with if_revision (or create/delete with CAS); the owner of the data id is
SIGSTOPped / SIGKILLed right after an ack and restarted / cut off.  Judged: no two acks
from one expected revision (lost update), every ack the winner of its revision on every
node, every winning revision = previous + 1 (counter) or live/deleted alternating
(create/delete), counter between acknowledged and acknowledged + outcome unknown, no
reader backwards, every node's listener strictly increasing and ending at the final
revision.  Faults are held until acks land elsewhere (a condition), never for a fixed time.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from r38lab import CasLab, judge_counter, judge_create_delete, keep_workdir, skip_reason

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason())),
]

WRITERS = 6
TAKEOVER_ACKS = 30  # acks through other nodes while the owner is faulted: takeover proven
AFTER_ACKS = 60  # acks after the fault ended


def _run(tmp_path: Path, mode: str, fault: str) -> tuple[CasLab, list[str]]:
    lab = CasLab(tmp_path / "lab")
    try:
        lab.up()
        lab.start_load(mode, WRITERS)
        o = lab.owner()
        node = lab.nodes[o]
        assert node is not None
        owner_addr = lab.addr(o)
        ok = lab.wait_for(lambda: lab.acks_since(0) >= 20, 20, "first acks")
        assert ok, lab.events
        t = time.monotonic()
        if fault == "stop":
            node.pause()
            lab.ev("owner SIGSTOP")
            lab.wait_for(
                lambda: lab.acks_since(t, avoid=owner_addr) >= TAKEOVER_ACKS, 15, "takeover"
            )
            node.resume()
            lab.ev("owner SIGCONT")
        elif fault == "kill":
            base = lab.acks_since(0)
            lab.wait_for(lambda: lab.acks_since(0) > base, 10, "an ack")
            node.kill()
            lab.ev("owner SIGKILL right after an ack")
            lab.wait_for(lambda: lab.acks_since(t) >= TAKEOVER_ACKS, 15, "takeover")
            lab.start_node(o)
            assert lab.wait_ready(o), lab.events
        elif fault == "cut":
            lab.lab.link(o, False)
            lab.ev("owner cut off")
            lab.wait_for(
                lambda: lab.acks_since(t, avoid=owner_addr) >= TAKEOVER_ACKS, 15, "takeover"
            )
            lab.lab.link(o, True)
            lab.ev("owner healed")
        t2 = time.monotonic()
        lab.wait_for(lambda: lab.acks_since(t2) >= AFTER_ACKS, 20, "acks after the fault")
        lab.stop_load()
        dumps, listens = lab.settle_and_dump()
        recs = lab.records()
        if mode == "cas":
            v = judge_counter(lab.init_rev, recs, dumps, listens)
        else:
            v = judge_create_delete(recs, dumps, listens)
        if v:
            keep_workdir(lab.workdir)
        return lab, v
    finally:
        lab.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fault", ["stop", "kill", "cut"])
def test_cas_counter_has_no_lost_update_with_the_owner_faulted(tmp_path: Path, fault: str) -> None:
    lab, violations = _run(tmp_path, "cas", fault)
    assert not violations, "\n".join(violations[:20]) + f"\nevents: {lab.events}"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fault", ["stop", "kill"])
def test_create_delete_cas_never_creates_twice_with_the_owner_faulted(
    tmp_path: Path, fault: str
) -> None:
    lab, violations = _run(tmp_path, "cre", fault)
    assert not violations, "\n".join(violations[:20]) + f"\nevents: {lab.events}"
