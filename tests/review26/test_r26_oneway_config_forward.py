"""review26 F1: a one-way cut between two nodes (C's connections to A's peer ports die;
A's to C stay up) makes every config write that A forwards to C (C owns the data id) fail
with OutcomeUnknownError for as long as the cut lasts, though A sees C up, C and B form a
healthy majority, and registry writes through A in the same situation succeed.

Why: A forwards the write to C over A's connection to C (fine); C applies and commits it
with B, and sends ``config_forward_reply`` as a one-way message over *its own* connection
to A's P+3, which the cut drops. A answers UNAVAILABLE "outcome unknown" after
FORWARD_TIMEOUT (2.2 s); a client whose server is A re-sends to A, which forwards to C
again, and so on. C's beacons tell A that C cannot reach it (``unreachable``), but the
config plane does not use that to route the forward elsewhere or answer at once.

Fixed: the forward asks for its answer on its own connection (``reply_here``) and the
owner sends it back there (the peer port's routing id).

Runs in a private network namespace (tests/review25/nslab.py); skipped when not root.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "review25"))
import nslab  # noqa: E402

FAST = ("--check-interval", "0.2", "--unhealthy-after", "1.5", "--evict-after", "3",
        "--peer-timeout", "1.0")  # fmt: skip
CUT_FOR = 10.0


def drive() -> dict:
    sys.path.insert(0, str(HERE.parent))
    from helpers import free_port_pair, service_owned_by, start_all, wait_until
    from r25lib import cluster_view

    from meshreg import Client
    from meshreg.errors import MeshregError

    tmp = tempfile.mkdtemp(prefix="r26ow-")
    ports = [free_port_pair() for _ in range(3)]
    addrs = [f"127.0.0.1:{p}" for p in ports]
    peers = sum((["--peer", x] for x in addrs), [])
    nodes = [nslab.GidNode(*FAST, *peers, "--data-dir", f"{tmp}/d{i}", port=p, gid=42611 + i)
             for i, p in enumerate(ports)]  # fmt: skip
    a, b, c = nodes
    out: dict = {}
    try:
        start_all(nodes)
        wait_until(lambda: all(list((cluster_view(n) or {}).values()).count("up") == 3
                               for n in nodes), 20, 0.1, "3 up")  # fmt: skip
        ids = [f"ow{j}" for j in range(6)]
        with Client(addrs, timeout=3.0) as w:
            for d in ids:
                w.config_publish(d, "init")
        svc = service_owned_by(c.address, addrs, "ow-svc")
        nslab.block(c, a)  # C no longer reaches A's peer ports; A still reaches C's
        wait_until(lambda: _stream_silent(c, a.address), 10, 0.05,
                   "C hears A by request only (A's stream cut)")  # fmt: skip
        t0 = time.monotonic()
        results: dict[str, list[str]] = {d: [] for d in ids}
        reg: list[str] = []
        with Client([a.address], timeout=3.0) as cl:  # the defaults but timeout
            while time.monotonic() - t0 < CUT_FOR:
                for d in ids:
                    t1 = time.monotonic() - t0
                    try:
                        cl.config_publish(d, f"through A at {t1:.1f}")
                        what = "ok"
                    except MeshregError as exc:
                        what = type(exc).__name__
                    took = time.monotonic() - t0 - t1
                    results[d].append(f"{t1:.1f}+{took:.2f}s:{what}")
                try:
                    cl.register(svc, "10.26.1.1", 80 + len(reg))
                    reg.append("ok")
                except MeshregError as exc:
                    reg.append(type(exc).__name__)
        # which data ids C owns: those whose writes through B land (any) - read owners off
        # the failures themselves: a data id that never succeeded through A
        out["results"] = results
        out["register_through_A_of_C_service"] = reg
        # a write is "bad" when it failed or took over 1 s (the others take milliseconds)
        out["bad"] = {d: [x for x in r if not x.endswith(":ok")
                          or float(x.split("+")[1].split("s")[0]) > 1.0]
                      for d, r in results.items()}  # fmt: skip
        out["bad"] = {d: r for d, r in out["bad"].items() if r}
        nslab.heal()
        out["ok"] = True
    except Exception as exc:  # noqa: BLE001
        out["error"] = f"{type(exc).__name__}: {exc}"[:3000]
    finally:
        try:
            nslab.heal()
        except Exception:  # noqa: BLE001
            pass
        for n in nodes:
            n.cleanup()
    return out


def _stream_silent(node, address: str) -> bool:
    from r25lib import req

    r = req(node, "cluster", 1.0)
    rows = r["result"]["members"] if r and r.get("ok") else []
    return any(m["address"] == address and m.get("stream_silent") is not None for m in rows)


@pytest.mark.timeout(150)
def test_config_writes_through_a_node_its_owner_cannot_reach() -> None:
    why = nslab.unavailable_reason()
    if why:
        pytest.skip(why)
    with nslab.NsLab() as lab:
        v = lab.drive(Path(__file__), "--drive", timeout=120)
    assert v.get("ok"), v
    assert all(r == "ok" for r in v["register_through_A_of_C_service"]), v
    assert not v["bad"], (
        f"during {CUT_FOR:g} s of a one-way cut (C cannot reach A's peer ports; A, B, C all "
        f"running, B and C a majority), config writes through A failed (OutcomeUnknown) or "
        f"took over 1 s (start+duration:outcome): {json.dumps(v['bad'])}; all writes: "
        f"{json.dumps(v['results'])}; registry writes through A to a service C owns: "
        f"{v['register_through_A_of_C_service']}"
    )


if __name__ == "__main__" and "--drive" in sys.argv:
    print(json.dumps(drive(), default=str))
