"""A provider process the load generator SIGKILLs (or SIGTERMs): registers N instances of
SERVICE through a session and waits (bounded: at most --max-seconds)."""
from __future__ import annotations

import argparse
import random
import threading

from meshreg import Client

ap = argparse.ArgumentParser()
ap.add_argument("--servers", required=True)
ap.add_argument("--service", required=True)
ap.add_argument("--n", type=int, default=3)
ap.add_argument("--max-seconds", type=float, default=60.0)
a = ap.parse_args()
c = Client(a.servers, timeout=3.0)
for _ in range(a.n):
    c.register(a.service, f"10.{random.randrange(200)}.{random.randrange(250)}.{random.randrange(1, 250)}",
               random.randrange(1024, 60000), metadata={"kind": "killed"})
print("registered", flush=True)
threading.Event().wait(a.max_seconds)
c.close()
