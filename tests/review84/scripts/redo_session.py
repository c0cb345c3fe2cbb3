# session client, N instances, node restart -> redo under write rate
import sys
import tempfile
import time

from common import *

from meshreg import Client

N = int(sys.argv[1])
R = int(sys.argv[2])
WATCH = float(sys.argv[3]) if len(sys.argv) > 3 else 40
tmp = tempfile.mkdtemp()
conf = cfg(tmp, R)
node = NodeProcess("--config", conf).start()
cap = capture()
try:
    c = Client(node.address, timeout=3.0)
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
    while time.monotonic() < end:
        time.sleep(2)
        s = stats(node.port)
        print(
            f"t={time.monotonic() - t0:5.1f} count={count(node.port)} throttled={s['writes_throttled']} regs_client={len(c._agent.core.registrations) if hasattr(c, '_agent') else '?'}"
        )
    c.close()
    print("after close count", count(node.port))
finally:
    node.cleanup()
for l in cap.lines:
    print(f"{l[0] - t0:6.1f} {l[1]} {l[2][:300]}")
