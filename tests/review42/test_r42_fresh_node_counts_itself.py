"""review42 F1: a node replaced at the same address with an empty data directory (README
"Replace a dead node", docs/OPERATIONS.md "Same address") counts its own, empty store as
one of the majority it catches up from.  It says ready, and decides writes, after hearing
only majority-1 peers, which need not hold an acknowledged write.

docs/CONFIG.md (ready gate): a starting node "holds, for a majority of the configured
members (itself included), every data id at least as far as that member held it ... so a
ready node holds every version acknowledged before it started"; (write protocol) "Before
its first write of a data id ... the responsible node fetches the data id's versions from a
majority ... so a new owner never reassigns the revision".  Both count the node itself
(``ReadyGate._check``: ``len(self.synced) + 1 >= self.majority``; ``ConfigReplicator.write``:
``answered = {self.node_id}``).  That holds for a node that restarts with its disk (it
holds what it acknowledged), not for one whose disk is new.

Five nodes (a majority is 3).  n4 and n5 are cut off while the data id's owner O
publishes v1 with ``if_revision=0``: acknowledged by O and the two others (a majority).
O is SIGKILLed and its disk is lost; one of the other two acknowledging nodes is cut off
(two faults: a 5-node cluster is meant to survive them); n4 and n5 come back; the one node
left that holds v1 (Y) answers 0.3 s slower than n4 and n5 (a slow link, no loss).  O is
started again at its address with an empty data dir, as the docs say.  Expected: a read on
it (once ready) shows v1, and a create-if-absent (``if_revision=0``) is a CONFLICT.  Seen
(3 of 3 runs): ready while v1 is absent, and the second create acknowledged at revision 1
too: two acknowledged writes at one revision, one of which loses.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from r42lab import Lab42, keep_workdir, skip_reason, wait

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason())),
]

DELAY = 0.3  # s on every packet Y sends (impair.py; no loss)


@pytest.mark.timeout(150)
@pytest.mark.parametrize("n", [5, 3])
def test_a_fresh_node_at_the_same_address_keeps_the_acknowledged_write(
    tmp_path: Path, n: int
) -> None:
    """n=5: the brief's case (O's disk lost, X cut off, Y slow, n4 and n5 behind).  n=3: a
    single fault, the replaced node itself (O's disk lost, Y slow, Z behind)."""
    lab = Lab42(tmp_path / "lab", n=n, peer_timeout=2.0)
    ok = False
    try:
        lab.up_nodes(range(n))
        data_id = next(f"r42-fresh-{i}" for i in range(200) if lab.owner(f"r42-fresh-{i}") == 0)
        if n == 5:
            o, x, y, behind = 0, 1, 2, [3, 4]
        else:
            o, x, y, behind = 0, None, 1, [2]
        for z in behind:
            lab.lab.link(z, False)
        # O sees them down (a record is not sent to a peer seen down: nothing for TCP to
        # deliver at the heal)
        assert wait(lambda: lab.up_count(o) == n - len(behind), 20), lab.events
        lab.ev(f"{behind} cut off and seen down")
        writer = lab.repl(o, [o], data_id)
        first = writer("publish v1 0")
        assert first["ok"] and first["rev"] == 1, first
        lab.ev(f"v1 acknowledged at {first['rev']}")
        reader_y = lab.repl(y, [y], data_id)
        assert wait(lambda: reader_y("get").get("content") == "v1", 10), lab.events

        lab.kill(o, wipe=True)  # disk lost
        if x is not None:
            lab.lab.link(x, False)  # the other acknowledging node cut off
        lab.lab.impair([y], loss=0.0, delay=(DELAY, DELAY), seed=42)
        lab.ev("n1 killed, n2 cut off, n3 slowed")
        lab.start_node(o)  # same address, same list, empty data dir
        for z in behind:
            lab.lab.link(z, True)
        lab.ev(f"{behind} back")

        fresh = lab.repl(o, [o], data_id)
        # the first answer that is not "not ready"
        seen = wait(
            lambda: (lambda r: r if r.get("ok") or r.get("absent") else None)(fresh("get")),
            30,
            step=0.02,
        )
        assert seen is not None, lab.nodes[o].log_tail()  # type: ignore[union-attr]
        lab.ev(f"fresh n1 answers {seen}")
        second = fresh("publish v2 0")  # create-if-absent: v1 exists at revision 1
        lab.ev(f"fresh n1 create-if-absent: {second}")

        # heal everything; every node converges: which one holds revision 1?
        lab.lab.clear_impairment()
        if x is not None:
            lab.lab.link(x, True)
        dumps = wait(
            lambda: (lambda ds: ds if all(ds) and len({str(d["hist"]) for d in ds}) == 1 else None)(
                [lab.dump(j, data_id) for j in range(n)]
            ),
            40,
            step=0.5,
        )
        lab.ev(f"converged: {dumps and dumps[0]}")
        problems = []
        if seen.get("content") != "v1":
            problems.append(f"ready fresh node read {seen} (v1 acknowledged at revision 1)")
        if second.get("ok"):
            problems.append(f"create-if-absent acknowledged on the fresh node: {second}")
        if dumps is None:
            problems.append("the nodes did not converge within 40 s")
        elif first["ok"] and second.get("ok"):
            problems.append(f"two acknowledged writes at revision 1; history {dumps[0]['hist']}")
        print("\n".join(problems))
        print(lab.events)
        assert not problems, "\n".join(problems)
        ok = True
    finally:
        if not ok:
            keep_workdir(tmp_path / "lab", "/tmp/r42/failed")
        lab.close()
