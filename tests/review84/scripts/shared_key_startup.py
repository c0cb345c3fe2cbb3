# P client processes (here: Client objects) of one application key, each register_many M at start; R per key per node
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import *

sys.path.insert(0, "/work/main/tests/review83")
from r83lib import Keys

from meshreg import Client

P = int(sys.argv[1])
M = int(sys.argv[2])
R = int(sys.argv[3])
tmp = Path(tempfile.mkdtemp())
keys = Keys(
    tmp,
    {
        "orders-app": 'allow = [{ namespace = "public", group = "*", service = "*", access = "write" }]'
    },
)
conf = cfg(str(tmp), R)
node = NodeProcess(*keys.node_args(), "--config", conf, curve=keys.curve("cluster")).start()
res = {}


def run(p):
    c = Client(node.address, key=str(tmp / "orders-app.key"), server_key=str(tmp / "cluster.pub"))
    t = time.monotonic()
    f = c.register_many(
        [{"service": "orders", "ip": f"10.{p}.{i // 250}.{i % 250}", "port": 80} for i in range(M)]
    )
    res[p] = (len(f), time.monotonic() - t, str(f[0][1])[:250] if f else "")
    clients.append(c)


clients = []
try:
    ts = [threading.Thread(target=run, args=(p,)) for p in range(P)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for p in sorted(res):
        print(p, res[p])
    print("failed total", sum(r[0] for r in res.values()), "of", P * M)
    for c in clients:
        c.close()
finally:
    node.cleanup()
