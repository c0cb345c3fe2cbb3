"""review42 F2: a node whose wall clock runs a few seconds ahead (10 s here; the cluster
counts a node out only past 30 s, README "Clock skew") shows readers a version no majority
has acknowledged, at once, while its write is still undecided.

docs/CONFIG.md ("When a node shows a version to readers and listeners"): "Only once it
knows a majority acknowledged it (its committed flag ...), or once it was written
SETTLE_SECONDS (2.5 s) ago: the owner answers within its 2 s ack timeout, so such a
version's write ended 'outcome unknown' ... Until then a get, a listen's answer and the
notifications show the newest version that qualifies".  "Written 2.5 s ago" is judged as
``now >= entry.modified + SETTLE_SECONDS`` (configcenter/core.py ``_settled``): ``modified``
is the owner's wall clock, ``now`` the reader's node's.  A node 10 s ahead finds every
record from its peers already 10 s old: settled on arrival.

meshreg has no option to run a node with an offset clock, so the node process is started
through ``python -c`` that patches ``time.time``/``time.time_ns`` before ``meshreg.cli``
runs (Lab42.SKEWED; no LD_PRELOAD).

Five nodes (a majority is 3, so no peer can mark a record committed on its own); n2's clock
+10 s.  The acks to the owner n1 are dropped (iptables in n1's namespace: its peer ROUTER
port P+3), so a publish through n1 gathers no majority and ends "outcome unknown" after 2 s.
Expected: neither n2 nor n3 shows it before the 2 s are over (n3, clock right: at 2.5 s).
Seen (3 of 3 runs): n2 shows it 0.01 s after the publish was sent, n3 at 2.5 s.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from r42lab import PORT, Lab42, keep_workdir, skip_reason, wait

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason())),
]

SKEW = 10.0  # s ahead: below the 30 s at which a node counts itself out


@pytest.mark.timeout(120)
def test_a_node_with_its_clock_ahead_shows_no_unacknowledged_version(tmp_path: Path) -> None:
    lab = Lab42(tmp_path / "lab", n=5, peer_timeout=2.0)
    lab.skew = {1: SKEW}
    ok = False
    try:
        lab.up_nodes(range(5))
        data_id = next(f"r42-clk-{i}" for i in range(200) if lab.owner(f"r42-clk-{i}") == 0)
        writer = lab.repl(0, [0], data_id)
        first = writer("publish v1")
        assert first["ok"], first
        ahead, right = lab.repl(1, [1], data_id), lab.repl(2, [2], data_id)
        assert wait(
            lambda: ahead("get").get("content") == "v1" and right("get").get("content") == "v1", 10
        ), lab.events
        # the acks to n1 are lost: n2..n5 answer n1's records over n1's ROUTER (P+3)
        lab.drop(0, ["INPUT", "-i", "eth0", "-p", "tcp", "--dport", str(PORT + 3), "-j", "DROP"])
        assert writer.proc.popen.stdin is not None
        writer.proc.popen.stdin.write(b"publish v2\n")
        writer.proc.popen.stdin.flush()
        sent = time.monotonic()
        shown: dict[str, float] = {}

        def look() -> bool:
            for name, repl in (("n2 (+10 s)", ahead), ("n3", right)):
                if name not in shown and repl("get").get("content") == "v2":
                    shown[name] = round(time.monotonic() - sent, 2)
            return len(shown) == 2

        wait(look, 6, step=0.01)
        from netlab import read_line

        answer = read_line(writer.proc, 10) or ""
        lab.ev(f"v2 shown at {shown} s after the publish; the writer heard {answer[:200]}")
        print(lab.events)
        if "OutcomeUnknownError" not in answer:  # the setup did not hold: say why (CI, once,
            # 2026-12-05: acknowledged in 0.02 s; unexplained, kept: runs/ci-30a.txt)
            from netlab import iptables_command, run

            rules = run("ip", "netns", "exec", lab.lab.namespaces[0], str(iptables_command()),
                        "-L", "INPUT", "-v", "-n", check=False).stdout  # fmt: skip
            raise AssertionError(f"v2 acknowledged with the acks to n1 dropped: {answer}; "
                                 f"n1's INPUT rules: {rules}; events: {lab.events}")  # fmt: skip
        early = {k: t for k, t in shown.items() if t < 2.0}
        assert not early, (
            f"an unacknowledged version shown before its write was decided: {early} (all: {shown})"
        )
        ok = True
    finally:
        if not ok:
            keep_workdir(tmp_path / "lab", "/tmp/r42/failed")
        lab.close()
