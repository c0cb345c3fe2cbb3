"""review25: every node SIGKILLed at once in the middle of a stream of acknowledged config
writes, then restarted on its data dir (three rounds). Judged: every acknowledged version
is current at its revision on every node (or superseded by a later revision), and the
current revision of each data id is at least the last one acknowledged.

docs/CONFIG.md: a write is answered after the owner's commit and a majority's persisted
acks; README "What a restart keeps".
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest
from helpers import raw_request, start_all, wait_until
from r25lib import make_nodes, new_ports  # (puts review20 on the path)

from meshreg import Client
from meshreg.errors import MeshregError

TIMINGS = ("--check-interval", "0.2", "--unhealthy-after", "3", "--evict-after", "6",
           "--peer-timeout", "1.0")  # fmt: skip
IDS = [f"crash25-{i}" for i in range(4)]


def _ready(n) -> bool:
    try:
        r = raw_request(n.port, {"v": 1, "id": 1, "op": "stats"}, 1.0)
    except Exception:  # noqa: BLE001
        return False
    cfg = r.get("result", {}).get("config", {}) if r.get("ok") else {}
    return bool(cfg.get("ready")) and cfg.get("members_up") == 3


@pytest.mark.timeout(240)
def test_acknowledged_config_writes_survive_killing_every_node_at_once(
    started_nodes, tmp_path: Path
) -> None:
    nodes = make_nodes(new_ports(3), TIMINGS, str(tmp_path))
    started_nodes.extend(nodes)
    acked: list[tuple[str, int, str]] = []
    problems: list[str] = []
    for rnd in range(3):
        start_all(nodes)
        wait_until(lambda: all(_ready(n) for n in nodes), 30, 0.2, f"round {rnd}: ready")
        stop = threading.Event()

        def writer(k: int, stop: threading.Event = stop, rnd: int = rnd) -> None:
            with Client([nodes[k].address], timeout=2.0) as c:
                i = 0
                while not stop.is_set() and i < 100_000:
                    did = IDS[(i + k) % len(IDS)]
                    body = f"r{rnd} w{k} #{i}"
                    i += 1
                    try:
                        got = c.config_publish(did, body)
                    except MeshregError:
                        continue
                    acked.append((did, got.revision, body))

        ts = [threading.Thread(target=writer, args=(k,), daemon=True) for k in range(3)]
        for t in ts:
            t.start()
        before = len(acked)
        want = before + 40 + 20 * rnd
        wait_until(lambda: len(acked) >= want, 30, 0.01, "writes acknowledged")  # noqa: B023
        for n in nodes:  # all at once
            n.signal(signal.SIGKILL)
        stop.set()
        for t in ts:
            t.join(10)
        for n in nodes:
            n.kill()
    start_all(nodes)
    wait_until(lambda: all(_ready(n) for n in nodes), 30, 0.2, "final: ready")

    def state(n) -> dict[str, tuple[int, dict[int, str]]]:
        with Client([n.address], timeout=3) as c:
            out = {}
            for did in IDS:
                cur = c.config_get(did)
                hist = {}
                for h in c.config_history(did, limit=200):
                    hist.setdefault(h.revision, h.content)  # the winner first
                out[did] = (cur.revision if cur else 0, hist)
            return out

    def check() -> list[str]:
        bad = []
        for name, n in zip("ABC", nodes, strict=True):
            st = state(n)
            for did, rev, body in acked:
                cur, hist = st[did]
                if rev > cur - 90 and hist.get(rev) != body:  # (keep_revisions 100)
                    bad.append(f"{name}: {did} rev {rev} acked {body!r}, winner {hist.get(rev)!r}")
                if cur < rev:
                    bad.append(f"{name}: {did} current {cur} < acked {rev}")
        return bad

    deadline = time.monotonic() + 20
    while True:
        problems = check()
        if not problems or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not problems, f"{len(problems)} problems of {len(acked)} acks: {problems[:10]}"
