"""review25 F3 (the known open item, reproduced): a session close applied against a node's
stale table removes an instance that a live provider re-registered through another node;
after the heal the close's tombstone wins everywhere and the live instance is missing on
every node until its provider's renewals notice and register it again.

Steps (2 nodes A, B in a network namespace; the peer ports cut both ways with iptables,
clients reach both): provider 1 registers X through A in its session S1; A and B are cut
from each other; provider 1's new process (provider 2, a new session S2) registers X
through B; provider 1 (the old process) closes S1 through A: A, whose table still has X
in S1, deregisters X with a fresh stamp; the cut heals.

Expected (DISTRO.md "Sessions": "Close deregisters the session's instances"; README:
"close() ends the session and deregisters its instances": X is no longer S1's; the
registry must never lose a live instance). Actual: the close's tombstone (stamped after
provider 2's registration) outranks the registration on both nodes: X is missing on B
(which never lost it during the cut) and on A, until provider 2's renewal reports fewer
instances and it registers again (one to two beat intervals).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import nslab  # noqa: E402

BEAT = 2.0  # s, the providers' beat (renewal) interval
TIMINGS = ("--check-interval", "0.2", "--unhealthy-after", "6", "--evict-after", "12",
           "--peer-timeout", "1.0")  # fmt: skip
IP, PORT = "10.25.3.1", 80


def drive(owner: int) -> dict:
    sys.path.insert(0, str(HERE.parent))
    from helpers import free_port_pair, service_owned_by, start_all, wait_until
    from r25lib import cluster_view, listing

    from meshreg import Client

    ports = [free_port_pair() for _ in range(2)]
    peers = sum((["--peer", f"127.0.0.1:{p}"] for p in ports), [])
    nodes = [nslab.GidNode(*TIMINGS, *peers, port=p, gid=42501 + i) for i, p in enumerate(ports)]
    a, b = nodes
    addr = f"{IP}:{PORT}"
    out: dict = {}
    p1 = p2 = None
    try:
        start_all(nodes)

        def views(state: str) -> bool:
            va, vb = cluster_view(a) or {}, cluster_view(b) or {}
            return va.get(b.address) == state and vb.get(a.address) == state

        wait_until(lambda: views("up"), 20, 0.1, "both up")
        svc = service_owned_by(nodes[owner].address, [n.address for n in nodes], "race25-")
        p1 = Client([a.address], beat_interval=BEAT, timeout=3.0)
        p1.register(svc, IP, PORT)
        wait_until(lambda: (listing(b, svc) or {}).get(addr) is True, 5, 0.05, "X on B")
        nslab.cut(a, b)
        wait_until(lambda: views("down"), 10, 0.1, "the cut seen on both")
        p2 = Client([b.address], beat_interval=BEAT, timeout=3.0)
        p2.register(svc, IP, PORT)  # the provider's new process, a new session, through B
        p1.close()  # the old process ends: its close goes to A, whose table has X in S1
        p1 = None
        out["after_close"] = {"A": listing(a, svc), "B": listing(b, svc)}
        nslab.heal()
        t0 = time.monotonic()
        missing: dict[str, list[float]] = {"A": [], "B": []}
        end = t0 + 4 * BEAT + 6
        while time.monotonic() < end:
            for name, n in (("A", a), ("B", b)):
                got = listing(n, svc, 0.5)
                if got is not None and got.get(addr) is not True:
                    missing[name].append(round(time.monotonic() - t0, 2))
            time.sleep(0.1)
        out["missing"] = {k: [min(v), max(v), len(v)] if v else None for k, v in missing.items()}
        out["final"] = {"A": listing(a, svc), "B": listing(b, svc)}
        out["ok"] = True
    except Exception as exc:  # noqa: BLE001
        out["error"] = f"{type(exc).__name__}: {exc}"[:2000]
    finally:
        for c in (p1, p2):
            if c is not None:
                try:
                    c.close()
                except Exception:  # noqa: BLE001
                    pass
        for n in nodes:
            n.cleanup()
    return out


@pytest.mark.timeout(120)
@pytest.mark.parametrize("owner", [0, 1], ids=["owner-A", "owner-B"])
def test_session_close_on_a_stale_node_keeps_the_instance_registered_again_elsewhere(
    owner: int,
) -> None:
    why = nslab.unavailable_reason()
    if why:
        pytest.skip(why)
    with nslab.NsLab() as lab:
        v = lab.drive(Path(__file__), "--drive", str(owner), timeout=100)
    assert v.get("ok"), v
    m = v["missing"]
    # A applied the close during the cut and never heard X registered again through B: it
    # lacks X until the heal's repair reaches it (AP); that must be quick, and B, which
    # held X all along, must never lose it (before the fix: B 0.4-3.9 s, A to 3.9 s).
    assert m["B"] is None and (m["A"] is None or m["A"][1] <= 2.0), (
        f"X (registered again through B by a live provider, whose old process then closed "
        f"its session through A during the cut) went missing after the heal: per node "
        f"[first s, last s, samples every ~0.1 s] {m}; during the cut after the close "
        f"{v['after_close']}; at the end {v['final']}"
    )


if __name__ == "__main__" and "--drive" in sys.argv:
    print(json.dumps(drive(int(sys.argv[sys.argv.index("--drive") + 1]))))
