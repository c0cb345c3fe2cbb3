# 3 nodes with the limit; session client with N instances; kill its server; watch
import sys
import tempfile
import time

from common import *
from helpers import start_all

from meshreg import Client

N = int(sys.argv[1])
R = int(sys.argv[2])
WATCH = float(sys.argv[3])
SESS = sys.argv[4] == "session"
tmp = tempfile.mkdtemp()
conf = cfg(tmp, R)
ports = [free_port_pair() for _ in range(3)]
peers = sum((["--peer", f"127.0.0.1:{p}"] for p in ports), [])
T = (
    "--check-interval",
    "0.5",
    "--unhealthy-after",
    "5",
    "--evict-after",
    "10",
    "--peer-timeout",
    "1.0",
)
nodes = start_all([NodeProcess(*T, *peers, "--config", conf, port=p) for p in ports], 30)
cap = capture()
try:
    wait_until(lambda: all(stats(n.port)["config"]["ready"] for n in nodes), 20, what="ready")
    c = Client([n.address for n in nodes], timeout=3.0, sessions=SESS)
    t = time.monotonic()
    failed = c.register_many(
        [
            {"service": f"app{i % 20}", "ip": f"10.9.{i // 250}.{i % 250}", "port": 80}
            for i in range(N)
        ],
        timeout=120,
    )
    print(f"register_many {N} at R={R}: {len(failed)} failed, {time.monotonic() - t:.1f}s")
    time.sleep(3)
    tot = lambda n: sum(count(n.port, f"app{k}") for k in range(20))
    print(
        "counts",
        [tot(n) for n in nodes],
        "throttled",
        [stats(n.port)["writes_throttled"] for n in nodes],
    )
    victim = next(n for n in nodes if n.address == c.server)
    rest = [n for n in nodes if n is not victim]
    base = [stats(n.port)["writes_throttled"] for n in rest]
    victim.kill()
    t0 = time.monotonic()
    print("killed", victim.address)
    end = time.monotonic() + WATCH
    while time.monotonic() < end:
        time.sleep(3)
        print(
            f"t={time.monotonic() - t0:5.1f} server={c.server} counts={[tot(n) for n in rest]} throttled+={[stats(n.port)['writes_throttled'] - b for n, b in zip(rest, base)]} healthy={[stats(n.port)['instances'] for n in rest][:1]}"
        )
    c.close()
finally:
    for n in nodes:
        n.cleanup()
for l in cap.lines[:30]:
    print(f"{l[0] - t0:6.1f} {l[1]} {l[2][:300]}")
