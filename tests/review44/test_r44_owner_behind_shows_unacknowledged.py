"""review44 F1: a writer whose wall clock runs BEHIND the others' (10 s here; the cluster
keeps a node up to 30 s off) stamps its versions 10 s in the past, and every peer with a
right clock shows such a version to readers at once, before any majority acknowledged it.
The mirror image of review42 F2 (a reader ahead), which was fixed only for the reader's
own lead.

docs/CONFIG.md ("When a node shows a version to readers and listeners"): "Only once it
knows a majority acknowledged it ..., or once it was written SETTLE_SECONDS (2.5 s) ago
... '2.5 s ago' is by the cluster's clock: `modified` is the writer's wall clock, and a
node whose clock runs ahead of its peers' ... subtracts its lead first ... a node behind
waits longer, never shows one sooner."  The reader subtracts its own lead
(``ConfigStore.shown``: ``now -= self.clock_lead``, clamped at >= 0 by
config_plane ``_take_clock_lead``); nothing accounts for the WRITER's lag, which is in
``modified``.

Five nodes (a majority is 3: no peer can mark a record committed on its own, so the
only way to show it early is the settle rule).  n1 owns the data id, its clock -10 s.
``publish v1`` is acknowledged; then the acks to n1 are dropped (iptables in n1's
namespace on its peer ROUTER port P+3) and ``publish v2`` is sent through n1.
Expected: n3 and n4 (clocks right) show v2 no sooner than the write's 2 s (at 2.5 s).
A listener on n3 is notified alike.
Seen: 3 of 3 runs, both show it 0.00-0.02 s after the publish (the writer: "outcome
unknown" at 2 s).  The control (every clock right) passes: both show it at 2.5 s.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from r44lab import PORT, Lab44, keep_workdir, load, skew_params, skip_reason, wait

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason())),
]

SKEW = -10.0  # s: n1 (the owner) 10 s behind, within the 30 s the cluster tolerates


@pytest.mark.timeout(150)
@pytest.mark.parametrize(**skew_params(SKEW, "owner-10s-behind"))
def test_peers_show_no_unacknowledged_version_of_a_writer_behind(
    tmp_path: Path, skew: float
) -> None:
    lab = Lab44(tmp_path / "lab", n=5, peer_timeout=2.0)
    lab.skew = {0: skew} if skew else {}
    ok = False
    try:
        lab.up_nodes(range(5))
        data_id = next(f"r44-behind-{i}" for i in range(200) if lab.owner(f"r44-behind-{i}") == 0)
        writer = lab.repl44(0, [0], data_id)
        first = writer("publish v1")
        assert first["ok"], first
        right, other = lab.repl44(2, [2], data_id), lab.repl44(3, [3], data_id)
        assert wait(
            lambda: right("get").get("content") == "v1" and other("get").get("content") == "v1",
            10,
        ), lab.events
        out = lab.workdir / "listen-n3.jsonl"
        listener = lab.worker(2, "listen", "--servers", lab.addr(2), "--out", str(out),
                              "--name", "l3", "--max-seconds", "60", data_id=data_id)  # fmt: skip
        from netlab import read_line

        assert read_line(listener, 20) == "ready", lab.events
        lab.drop(0, ["INPUT", "-i", "eth0", "-p", "tcp", "--dport", str(PORT + 3), "-j", "DROP"])
        assert writer.proc.popen.stdin is not None
        writer.proc.popen.stdin.write(b"publish v2\n")
        writer.proc.popen.stdin.flush()
        sent = time.monotonic()
        shown: dict[str, float] = {}

        def look() -> bool:
            for name, repl in (("n3", right), ("n4", other)):
                if name not in shown and repl("get").get("content") == "v2":
                    shown[name] = round(time.monotonic() - sent, 2)
            return len(shown) == 2

        wait(look, 6, step=0.01)
        wait(lambda: '"v2"' in out.read_text(), 5)
        for rec in load(out):
            if rec.get("k") == "cb" and rec.get("c") == "v2":
                shown["n3 listener"] = round(rec["t"] - sent, 2)
                break

        answer = read_line(writer.proc, 10) or ""
        lab.ev(f"v2 shown at {shown} s after the publish; the writer heard {answer[:200]}")
        print(lab.events)
        assert "OutcomeUnknown" in answer, answer  # no majority: the setup held
        early = {k: t for k, t in shown.items() if t < 2.0}
        assert not early, (
            f"an unacknowledged version of a writer 10 s behind shown by peers with a right "
            f"clock before its write was decided: {early} (all: {shown}); writer: {answer[:160]}"
        )
        ok = True
    finally:
        if not ok:
            keep_workdir(tmp_path / "lab", "/tmp/r44/failed")
        lab.close()
