import subprocess
import tempfile

from common import *
from helpers import RawDealer

tmp = tempfile.mkdtemp()
conf = cfg(tmp, 2)  # burst 4
node = NodeProcess("--config", conf).start()
try:
    d = RawDealer(node.port)
    ent = lambda k: {"group": "DEFAULT_GROUP", "service": "b", "ip": f"10.0.0.{k}", "port": 1}
    r1 = d.call("register_batch", namespace="public", instances=[ent(k) for k in range(4)])
    r2 = d.call("register_batch", namespace="public", instances=[ent(k) for k in range(10, 13)])
    print("batch1 ok", r1["ok"], "batch2", r2.get("error"))
    print("count b", count(node.port, "b"))
    r3 = d.call(
        "deregister",
        namespace="public",
        group="DEFAULT_GROUP",
        service="b",
        ip="10.0.0.1",
        port=1,
        cluster="DEFAULT",
    )
    print("dereg", r3.get("error"), "count b", count(node.port, "b"))
    r4 = d.call(
        "config_publish", namespace="public", group="DEFAULT_GROUP", data_id="x", content="v"
    )
    print("publish", r4.get("error"))
    r5 = d.call("config_get", namespace="public", group="DEFAULT_GROUP", data_id="x")
    print("get", r5.get("error", r5.get("result")))
    out = subprocess.run(
        ["meshreg", "stats", "-s", node.address], capture_output=True, text=True
    ).stdout
    print([l for l in out.splitlines() if "throttled" in l])
    print(
        "stats",
        stats(node.port)["writes_throttled"],
        stats(node.port).get("rejected_quota"),
        stats(node.port)["config"]["rejected"],
    )
    print(node.log()[-1500:])
finally:
    node.cleanup()
