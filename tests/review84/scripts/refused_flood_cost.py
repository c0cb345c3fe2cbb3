# one flooding connection pipelines register_batch (B entries) for D s; bystander latency, node cpu
import sys
import tempfile
import threading
import time

from common import *
from helpers import RawDealer

R = int(sys.argv[1])
B = int(sys.argv[2])
D = float(sys.argv[3])
INFL = 32
tmp = tempfile.mkdtemp()
conf = cfg(tmp, R)
node = NodeProcess("--config", conf).start()


def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


lat = []
stop = False


def bystander():
    d = RawDealer(node.port)
    while not stop:
        t = time.monotonic()
        d.call("instances", namespace="public", group="DEFAULT_GROUP", service="other", timeout=10)
        lat.append(time.monotonic() - t)
        time.sleep(0.01)
    d.close()


try:
    b = threading.Thread(target=bystander)
    b.start()
    time.sleep(1)
    base = list(lat)
    lat.clear()
    d = RawDealer(node.port)
    n = 0
    ok = 0
    sent = 0
    got = 0
    c0 = cpu(node.proc.pid)
    t = time.monotonic()
    end = t + D
    while time.monotonic() < end:
        while sent - got < INFL:
            d.send(
                "register_batch",
                namespace="public",
                instances=[
                    {
                        "group": "DEFAULT_GROUP",
                        "service": "flood",
                        "ip": f"10.{(n + k) // 62500 % 250}.{(n + k) // 250 % 250}.{(n + k) % 250}",
                        "port": 1,
                    }
                    for k in range(B)
                ],
            )
            n += B
            sent += 1
        r = d.replies(1, 10)[0]
        got += 1
        ok += r["ok"]
    for r in d.replies(sent - got, 10):
        ok += r["ok"]
    el = time.monotonic() - t
    c1 = cpu(node.proc.pid)
    stop = True
    b.join()
    print(
        f"R={R} B={B}: {sent} batches ({n} entries) sent in {el:.1f}s = {sent / el:.0f} batches/s; {ok} batches taken; node cpu {100 * (c1 - c0) / el:.0f}%"
    )
    q = sorted(lat)
    bq = sorted(base)
    print(
        f"bystander instances latency: base p50 {1000 * bq[len(bq) // 2]:.1f}ms; during flood n={len(q)} p50 {1000 * q[len(q) // 2]:.1f}ms p99 {1000 * q[int(len(q) * 0.99)]:.1f}ms max {1000 * q[-1]:.1f}ms"
    )
    print("count", count(node.port, "flood"), "throttled", stats(node.port)["writes_throttled"])
    d.close()
finally:
    stop = True
    node.cleanup()
