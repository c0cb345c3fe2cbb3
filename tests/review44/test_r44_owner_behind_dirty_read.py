"""review44 F1, the consequence: the version a peer showed early (a writer 10 s behind,
test_r44_owner_behind_shows_unacknowledged.py) is then lost, and a client that read it at
revision 2 has its own next write acknowledged at revision 2 too: two versions seen at one
revision, and the one it read never becomes current (a dirty read; the simulation's "saw
app1 at 12 after 13", seed 173, which the settle rule was added to stop).

docs/CONFIG.md (When a node shows a version): "a record may now be one its owner never
saved; shown on a peer, a client could read revision R+1 there and then see its own next
write acknowledged at R+1 or lower ... Until then a get ... show[s] the newest version that
qualifies".

Five nodes, n1 (owner) 10 s behind.  ``publish v1`` acknowledged.  n1's traffic to and from
n2, n4, n5 is dropped, and n3's acks to it: ``publish v2`` through n1 reaches n3 only.
Client X (servers n3, then n2, n4, n5) reads.  n1 is SIGKILLed (its write never had a
majority) and n3 is cut off.  X publishes v3: a new owner among n2, n4, n5 catches up from
them (no v2) and acknowledges v3.  Heal, and look at revision 2 everywhere.
Expected: X never reads a version that is not its revision's winner in the end.
Control: every clock right (X reads v1 at that moment; passes).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from r44lab import PORT, Lab44, keep_workdir, skew_params, skip_reason, wait

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason())),
]


@pytest.mark.timeout(200)
@pytest.mark.parametrize(**skew_params(-10.0, "owner-10s-behind"))
def test_a_version_shown_early_is_not_lost_under_a_reader(tmp_path: Path, skew: float) -> None:
    lab = Lab44(tmp_path / "lab", n=5, peer_timeout=2.0)
    lab.skew = {0: skew} if skew else {}
    ok = False
    try:
        lab.up_nodes(range(5))
        data_id = next(
            d for d in (f"r44-dirty-{i}" for i in range(400))
            if lab.owner(d) == 0 and lab.owner_among(d, [1, 2, 3, 4]) != 2
        )  # fmt: skip
        writer = lab.repl44(0, [0], data_id)
        assert writer("publish v1")["ok"]
        x = lab.repl44(1, [2, 1, 3, 4], data_id)  # in n2's namespace: n3 first
        assert wait(lambda: x("get").get("content") == "v1", 10), lab.events
        for k in (1, 3, 4):
            ip = lab.lab.addresses[k]
            lab.drop(0, ["OUTPUT", "-d", ip, "-p", "tcp", "-j", "DROP"])
            lab.drop(0, ["INPUT", "-s", ip, "-p", "tcp", "-j", "DROP"])
        lab.drop(0, ["INPUT", "-p", "tcp", "--dport", str(PORT + 3), "-j", "DROP"])
        rows = x("stats")
        assert rows.get("ok") and rows["server"] == lab.addr(2), rows
        assert writer.proc.popen.stdin is not None
        writer.proc.popen.stdin.write(b"publish v2\n")
        writer.proc.popen.stdin.flush()
        sent = time.monotonic()
        # the record reaches n3 (and would be shown there at 2.5 s)
        assert wait(
            lambda: x("stats").get("history_entries", 0) > rows["history_entries"], 2
        ), lab.events
        read = x("get")
        lab.ev(f"X read {read} {time.monotonic() - sent:.2f} s after v2 was sent")
        lab.kill(0)
        lab.link(2, False)
        third: dict = {}
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            third = x("publish v3")
            if third.get("ok"):
                break
            time.sleep(0.3)
        lab.ev(f"X's publish v3: {third}")
        assert third.get("ok"), lab.events
        lab.link(2, True)

        def agreed():  # type: ignore[no-untyped-def]
            ds = [lab.dump(j, data_id) for j in (1, 2, 3, 4)]
            if any(d is None for d in ds) or len({repr(d["hist"]) for d in ds}) != 1:
                return None
            return ds[0]

        final = wait(agreed, 40, step=0.5)
        assert final, lab.events
        winners: dict[int, list] = {}
        for h in final["hist"]:
            winners.setdefault(h[0], h)
        lab.ev(f"history at the end (winner first): {final['hist']}")
        print("\n".join(map(str, lab.events)))
        assert winners[third["rev"]][1] == "v3", final  # the acknowledged write won
        assert winners[read["rev"]][1] == read["content"], (
            f"X read {read['content']!r} at revision {read['rev']}, then its own write "
            f"{third['content']!r} was acknowledged at revision {third['rev']}; in the end "
            f"revision {read['rev']} is {winners[read['rev']][1]!r}: X read a version that "
            f"no majority acknowledged and that was lost (history {final['hist']})"
        )
        ok = True
    finally:
        if not ok:
            keep_workdir(tmp_path / "lab", "/tmp/r44/failed")
        lab.close()
