"""A provider process for test_cut_off_owner (PROTOCOL.md 2.1, "Direct"), two public
Clients given ``--servers`` in that order (``server_order="listed"``: the first is their
server):

* A, per-instance beats (``sessions=False``): ``--ip-a``:1000 and :1001 of ``--service``;
  each beat is a write sent straight to the service's owner of A's view;
* B, a session: ``--ip-b``:2000.

First waits (bounded) until every server's ``cluster`` says every member up; then, after
registering, until both clients have a cluster view naming every member (so that their
writes go straight to the service's owner).  Prints ``ready A-SERVER B-SERVER``, then on stdin:

* ``minority ADDR``: wait (bounded) until ADDR's ``ping`` counts no majority up; prints
  ``minority <seconds waited>`` or ``err ...``;
* ``reg PORT`` / ``dereg PORT``: B registers / deregisters ``--ip-b``:PORT; prints
  ``ok reg PORT`` (or ``dereg``), or ``err ...``;
* ``quit`` or EOF: closes both clients and exits; so does ``--max`` s (bounded).
"""

from __future__ import annotations

import argparse
import logging
import select
import sys
import time
from pathlib import Path

import msgpack
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from helpers import wait_until  # noqa: E402

from meshreg import Client  # noqa: E402

logging.basicConfig(level=logging.WARNING, format="%(asctime)s prov %(message)s")
log = logging.getLogger("provider")
log.setLevel(logging.INFO)  # each command and its answer, timed, in the log
p = argparse.ArgumentParser()
p.add_argument("--servers")
p.add_argument("--service")
p.add_argument("--ip-a", default="10.20.0.1")
p.add_argument("--ip-b", default="10.20.0.2")
p.add_argument("--max", type=float, default=120)
a = p.parse_args()
servers = a.servers.split(",")
ctx = zmq.Context()


def ask(addr: str, op: str) -> dict | None:  # type: ignore[type-arg]
    """ADDR's result of ``op`` (no fields), or None (no answer, or an error)."""
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, 500)
    s.connect(f"tcp://{addr}")
    try:
        s.send(msgpack.packb({"v": 1, "id": 1, "op": op}))
        r = msgpack.unpackb(s.recv(), raw=False)
        return r["result"] if r.get("ok") else None
    except zmq.Again:
        return None
    finally:
        s.close()


def formed(addr: str) -> bool:
    """ADDR's ``cluster`` says every member up (ready: a client's view owns by it)."""
    res = ask(addr, "cluster")
    states = [m.get("state") for m in (res or {}).get("members", ())]
    return len(states) == len(servers) and all(st == "up" for st in states)


def minority(addr: str) -> bool:
    """ADDR's ``ping`` counts no majority of the members up."""
    res = ask(addr, "ping")
    return res is not None and "members" in res and res["members_up"] * 2 <= res["members"]


def wait(pred, seconds: float) -> float | None:  # type: ignore[no-untyped-def]
    """Seconds until ``pred()`` held (tests/helpers ``wait_until``), None: not within
    ``seconds``."""
    start = time.monotonic()
    try:
        wait_until(pred, seconds, 0.1)
    except AssertionError:
        return None
    return time.monotonic() - start


n = len(servers)
if wait(lambda: all(formed(x) for x in servers), 30) is None:
    print("err cluster not formed:", {x: ask(x, "cluster") for x in servers}, flush=True)
    sys.exit(1)
kw = dict(beat_interval=0.5, timeout=3.0, attempt_timeout=1.0, server_order="listed")
ca = Client(servers, sessions=False, **kw)  # type: ignore[arg-type]
cb = Client(servers, **kw)  # type: ignore[arg-type]
for port in (1000, 1001):
    ca.register(a.service, a.ip_a, port)
cb.register(a.service, a.ip_b, 2000)


def views() -> list[int]:
    # Each client's cluster view: members it sends writes straight to the owner of.  No
    # public API tells it (a test helper reads the session's state; a tuple, replaced
    # whole); fetched about attempt_timeout after the client connects, then every
    # VIEW_INTERVAL (10 s).  Without it a write goes through the server, never direct.
    return [len(c._agent.core._members) for c in (ca, cb)]


took = wait(lambda: views() == [n] * 2, 13)  # (a view fetched too early: the next one)
log.info("cluster views naming every member after %s s", took)
if took is None:
    print("err no cluster view naming every member:", views(), flush=True)
    sys.exit(1)
# A client's first write straight to the owner opens its connection there (libzmq
# connects in the background): sent before it is up, that write goes through the server
# instead (``DirectSend.NOT_CONNECTED``): B's register during the cut would, and A's
# first beat, forwarded by n2 to n1 as the cut began, would stall there until n2 counted
# n1 down (A then took n2 as silent and failed over).  A repeat of each client's
# register (it changes nothing) opens it now; A's beats keep A's open.
ca.register(a.service, a.ip_a, 1000)
cb.register(a.service, a.ip_b, 2000)
print("ready", ca.server, cb.server, flush=True)
end = time.monotonic() + a.max
while time.monotonic() < end:
    r, _, _ = select.select([sys.stdin], [], [], 0.5)
    if not r:
        continue
    line = sys.stdin.readline()
    if not line or line.strip() == "quit":
        break
    w = line.split()
    log.info("command %s", line.strip())
    try:
        if w[0] == "minority":
            took = wait(lambda addr=w[1]: minority(addr), 10)  # type: ignore[misc]
            print(f"minority {took:.2f}" if took is not None else "err no minority", flush=True)
        elif w[0] == "reg":
            cb.register(a.service, a.ip_b, int(w[1]))
            print("ok reg", w[1], flush=True)
        elif w[0] == "dereg":
            cb.deregister(a.service, a.ip_b, int(w[1]))
            print("ok dereg", w[1], flush=True)
    except Exception as e:  # reported to the test
        print("err", type(e).__name__, e, flush=True)
    log.info("done %s (servers: A %s, B %s)", line.strip(), ca.server, cb.server)
ca.close()
cb.close()
