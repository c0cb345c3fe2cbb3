"""review36 F4: a node held out of the members after its fourth planned restart within
`4 x evict_after` (what adding and removing members one at a time, as the README says,
does to every old node: 3 -> 4 -> 5 -> 4 -> 3 restarts each of them four times) is not
ready for `evict_after + unhealthy_after` (45 s at the defaults), and `meshreg ping
--ready` and `meshreg cluster` say it is "catching up from its peers" ("`meshreg cluster`
shows which peers it waits for"; cluster: state "catching up"), while it has caught up and
waits for nothing but its peers' crash-loop hold, which only `stats.health_judgment` names
("held out of the members by ... (a crash loop?)").

Expected: README "Rolling restart": ping --ready "exits 1 while it catches up" with the
reason; DISTRO.md "A node that keeps restarting": "stats shows health_judgment 'held out of
the members by ...'". An operator whose restart loop waits 45 s should be told why (held
by its peers as a restart loop, until when), not sent to look for peers it waits for.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from helpers import run_cli  # noqa: E402
from r36lib import Node, new_nodes, running, wait_until  # noqa: E402

# evict_after 15 s: four restarts count within 4 x 15 s even on a loaded machine (with 6 s,
# CI's fourth restart once came after the 24 s window and was not held), and the hold
# lasts evict_after + unhealthy_after (18 s) from the fourth start, past the checks below
TIMINGS = ("--check-interval", "0.2", "--unhealthy-after", "3", "--evict-after", "15",
           "--peer-timeout", "1.0")  # fmt: skip


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[Node]]:
    with running(new_nodes(3, str(tmp_path), TIMINGS)) as nodes:
        yield nodes


@pytest.mark.timeout(300)
def test_held_node_is_not_reported_as_catching_up(cluster: list[Node]) -> None:
    v, other = cluster[0], cluster[1]
    def held() -> str:
        j = str((v.stats() or {}).get("health_judgment", ""))
        return j if "held out" in j else ""

    # planned restarts, each once the node is ready again (README), until its peers hold
    # it out: the fourth here; in CI (load) twice not within 20 s of the fourth, so the
    # test goes on restarting rather than count on which restart is held (unexplained:
    # a leaving beacon lost under load makes one a crash restart, counted apart)
    judgment = ""
    for _ in range(8):
        v.stop()
        v.launch(v.peers)
        judgment = wait_until(lambda: held() or ("" if not v.ping_ready() else "ready"),
                              60, 0.1, "held out, or ready again")  # fmt: skip
        if judgment != "ready":
            break
    assert "held out" in judgment, "8 planned restarts in a row and never held out"
    ping = run_cli("ping", "--ready", "-s", v.address, "--timeout", "2")
    view = run_cli("cluster", "-s", other.address, "--json")
    assert ping.returncode == 1  # not ready: right
    import json

    state = next(m["state"] for m in json.loads(view.stdout)["members"]
                 if m["address"] == v.address)  # fmt: skip
    problems = []
    text = ping.stdout + ping.stderr
    # (the config center may still catch up from a majority right after the start: its
    # part of the answer may say so; the registry's must name the hold)
    if "registry catching up" in text or "held out" not in text:
        problems.append(f"ping --ready says: {text.strip()!r}")
    if state == "catching up":
        problems.append(f"cluster (on a peer) shows it {state!r}")
    assert not problems, f"the node's stats say {judgment!r}, but " + "; ".join(problems)
