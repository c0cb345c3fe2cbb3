"""A provider process for test_cut_off_server (review20 F3), the public Client: registers
``--n`` instances of each service, prints ``ready``, deregisters on ``dereg SERVICE PORT``
lines, exits on ``quit``, EOF or after ``--max`` s (bounded)."""

from __future__ import annotations

import argparse
import logging
import select
import sys
import time

from meshreg import Client

logging.basicConfig(level=logging.WARNING, format="%(asctime)s prov %(message)s")
p = argparse.ArgumentParser()
p.add_argument("--servers")
p.add_argument("--services")
p.add_argument("--ip")
p.add_argument("--n", type=int, default=2)
p.add_argument("--nosess", action="store_true")
p.add_argument("--beat", type=float, default=0.5)
p.add_argument("--max", type=float, default=200)
a = p.parse_args()
c = Client(
    a.servers.split(","), beat_interval=a.beat, timeout=3.0, attempt_timeout=1.0,
    sessions=not a.nosess, server_order="listed",  # n1 first: the client talks to n1
)  # fmt: skip
for s in a.services.split(","):
    for k in range(a.n):
        c.register(s, a.ip, 1000 + k)
print("ready", flush=True)
end = time.monotonic() + a.max
while time.monotonic() < end:
    r, _, _ = select.select([sys.stdin], [], [], 0.5)
    if r:
        line = sys.stdin.readline()
        if not line or line.strip() == "quit":
            break
        w = line.split()
        if w[0] == "dereg":
            try:
                c.deregister(w[1], a.ip, int(w[2]))
                print("ok", w[1], w[2], flush=True)
            except Exception as e:  # reported to the test
                print("err", type(e).__name__, e, flush=True)
c.close()
