"""review43 F3: two nodes wiped one after the other (the second before the first is
ready again) while the third, whole, is merely slow: each wiped node becomes ready as a
"new member" after hearing only the other wiped node, and both serve an empty config
store; together they are a majority and acknowledge a create-if-absent over a version
all three had acknowledged.

docs/CONFIG.md "A store that started empty": "A wiped node's peers have seen it, so it
waits for the whole stores".  ReadyGate._enough: "new" when no *synced* peer's page says
``known``; a wiped peer's page never does (its ``seen`` went with its disk), and fresh
peers count in ``len(synced) + 1 >= majority``.

Three members; v1 acknowledged by all three.  n1's packets are delayed DELAY s (a slow
link, no loss; impair.py).  n2 is SIGKILLed, its data dir removed, started again; then
the same for n3 at once (the operator does not wait for ``ping --ready``).  Expected:
neither says ready before it has heard n1 (the one whole store; two wiped stores are
beyond what a majority protocol survives, but here a whole store is up): reads are v1 or
UNAVAILABLE, and a create-if-absent is a CONFLICT.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from r43lab import Lab42, data_id_owned, first_answer, keep_workdir, skip_reason, wait

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason())),
]

DELAY = 0.5


@pytest.mark.timeout(150)
def test_two_wiped_nodes_do_not_vouch_for_each_other(tmp_path: Path) -> None:
    lab = Lab42(tmp_path / "lab", n=3, peer_timeout=2.0)
    ok = False
    try:
        lab.up_nodes(range(3))
        data_id = data_id_owned(lab, 1, "r43-two")
        writer = lab.repl(0, [0], data_id)
        first = writer("publish v1 0")
        assert first.get("ok") and first["rev"] == 1, first
        readers = [lab.repl(j, [j], data_id) for j in (1, 2)]
        assert wait(lambda: all(r("get").get("content") == "v1" for r in readers), 10)
        lab.ev("v1 acknowledged, n2 and n3 show it")

        lab.lab.impair([0], loss=0.0, delay=(DELAY, DELAY), seed=43)
        lab.kill(1, wipe=True)
        lab.start_node(1)
        lab.kill(2, wipe=True)
        lab.start_node(2)
        lab.ev("n1 slowed; n2 then n3 wiped and started again")
        answers = {}
        for j in (1, 2):
            answers[j] = first_answer(lab.repl(j, [j], data_id), 20)
            lab.ev(f"n{j + 1} answers {answers[j]}")
        second = lab.repl(1, [1, 2], data_id)("publish v2 0")
        lab.ev(f"create-if-absent on n2: {second}")
        lab.lab.clear_impairment()
        dumps = wait(
            lambda: (lambda ds: ds if all(ds) and len({str(d["hist"]) for d in ds}) == 1 else None)(
                [lab.dump(j, data_id) for j in range(3)]
            ),
            40,
            step=0.5,
        )
        lab.ev(f"converged: {dumps and dumps[0]}")
        print(lab.events)
        for j in (1, 2):
            print(lab.nodes[j].log_tail(12))  # type: ignore[union-attr]
        problems = [
            f"n{j + 1} (wiped) answered {a} while v1 was acknowledged at revision 1"
            for j, a in answers.items()
            if a is not None and a.get("content") != "v1"
        ]
        if second.get("ok"):
            problems.append(f"create-if-absent acknowledged over v1: {second}; "
                            f"converged: {dumps and dumps[0]}")  # fmt: skip
        assert not problems, "\n".join(problems)
        ok = True
    finally:
        if not ok:
            keep_workdir(tmp_path / "lab", "/tmp/r43/failed")
        lab.close()
