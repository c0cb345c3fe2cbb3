# keyless: K connections each register as fast as they can for D seconds; rate achieved vs R
import sys
import tempfile
import time

from common import *
from helpers import RawDealer

K = int(sys.argv[1])
R = int(sys.argv[2])
D = float(sys.argv[3])
tmp = tempfile.mkdtemp()
conf = cfg(tmp, R)
node = NodeProcess("--config", conf).start()
try:
    ds = [RawDealer(node.port) for _ in range(K)]
    n = 0
    ok = 0
    end = time.monotonic() + D
    t = time.monotonic()
    while time.monotonic() < end:
        for i, d in enumerate(ds):
            for j in range(20):
                d.send(
                    "register",
                    namespace="public",
                    group="DEFAULT_GROUP",
                    service="flood",
                    ip=f"10.{i % 250}.{(n // 250) % 250}.{n % 250}",
                    port=1,
                    cluster="DEFAULT",
                )
                n += 1
        for d in ds:
            for r in d.replies(20, 10):
                ok += r["ok"]
    el = time.monotonic() - t
    print(
        f"K={K} R={R}: {ok} of {n} registers taken in {el:.1f}s = {ok / el:.0f}/s (limit per connection {R}/s, burst {2 * R})"
    )
    print("count", count(node.port, "flood"), "throttled", stats(node.port)["writes_throttled"])
    for d in ds:
        d.close()
finally:
    node.cleanup()
