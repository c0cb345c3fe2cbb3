# per-instance (sessions=False) client, N instances, node restart -> re-registers on NOT_FOUND beats
import sys
import tempfile
import time

from common import *

from meshreg import Client

N = int(sys.argv[1])
R = int(sys.argv[2])
WATCH = float(sys.argv[3]) if len(sys.argv) > 3 else 30
SESS = len(sys.argv) > 4 and sys.argv[4] == "session"
tmp = tempfile.mkdtemp()
conf = cfg(tmp, R)
node = NodeProcess("--config", conf).start()
cap = capture()


def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


try:
    c = Client(node.address, timeout=3.0, sessions=SESS)
    t = time.monotonic()
    failed = c.register_many(
        [{"service": "app", "ip": f"10.9.{i // 250}.{i % 250}", "port": 80} for i in range(N)],
        timeout=120,
    )
    print(
        f"register_many {N} at R={R}: {len(failed)} failed, {time.monotonic() - t:.1f}s", failed[:1]
    )
    print("count", count(node.port), "throttled", stats(node.port)["writes_throttled"])
    node.kill()
    t0 = time.monotonic()
    node.start()
    print(f"restarted in {time.monotonic() - t0:.1f}s")
    end = time.monotonic() + WATCH
    prev_t, prev_c, prev_thr = time.monotonic(), cpu(node.proc.pid), 0
    while time.monotonic() < end:
        time.sleep(2)
        s = stats(node.port)
        now = time.monotonic()
        cp = cpu(node.proc.pid)
        thr = s["writes_throttled"]
        print(
            f"t={now - t0:5.1f} count={count(node.port)} throttled={thr} (+{(thr - prev_thr) / (now - prev_t):.0f}/s) node_cpu={100 * (cp - prev_c) / (now - prev_t):.0f}% reqs={s.get('requests', {}).get('register')}"
        )
        prev_t, prev_c, prev_thr = now, cp, thr
    t1 = time.monotonic()
    c.close()
    print(f"close took {time.monotonic() - t1:.1f}s; after close count", count(node.port))
finally:
    node.cleanup()
for l in cap.lines[:40]:
    print(f"{l[0] - t0:6.1f} {l[1]} {l[2][:300]}")
