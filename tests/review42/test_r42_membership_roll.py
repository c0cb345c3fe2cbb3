"""review42 (held): config consistency while the members change one at a time under load.

Held in the review (see /work/notes/review42.md): 3 -> 4 -> 5 -> 4 -> 3 (r42roll.GROW_SHRINK,
~35 s, run as ``python tests/review42/r42roll.py grow``; not a pytest: over 30 s) and the
replacement below.  CAS counter writers and plain publishers on every starting node,
a counter listener per node; judged by r38lab.judge_counter and r42roll.judge_pub.

This test: 3 nodes, n3 SIGKILLed and replaced by n4 at a new address as
docs/OPERATIONS.md "New address" says, with an operator's mistake on the way (n2 restarted
with the old list naming the dead n3, then fixed).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from r42lab import keep_workdir, skip_reason
from r42roll import REPLACE, run

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason())),
]


@pytest.mark.timeout(150)
def test_replacing_a_node_at_a_new_address_under_config_load(tmp_path: Path) -> None:
    v, stats, roll = run(tmp_path / "lab", 4, [0, 1, 2], REPLACE, [0, 1, 3], seconds=90)
    if v:
        keep_workdir(tmp_path / "lab", "/tmp/r42/failed")
    assert not v, (v[:10], stats, roll.lab.events)
    assert stats["cas_acks"] > 50 and stats["pub_acks"] > 50, stats
    assert all("NO PROGRESS" not in p for p in stats["progress"]), stats
