"""Probe: team-a floods unthrottled but expensive reads in its own namespace (config_list
page 1000, instances of a 2,000-instance service); how slow do team-b's reads get?
Bounded: 1,000 configs, 2,000 instances, <= 20 s of flood."""
from probe_common import *
import json, statistics, threading, sys
port = PORTS[0]
a = RawDealer(port, curve("team-a"))
def pipeline(d, n, op, **f):
    for i in range(n): d.send(op, **f)
    return d.replies(n, 60)
if "setup" in sys.argv:
    ok = 0
    for s in range(0, 1000, 100):
        for i in range(s, s+100): a.send("config_publish", namespace="team-a", data_id=f"cfg-{i}", content="v" * 200)
        ok += sum(r["ok"] for r in a.replies(100, 60))
    print("configs", ok)
    ents = [{"service": "wide", "ip": f"10.5.{i//250}.{i%250+1}", "port": 80} for i in range(2000)]
    for s in range(0, 2000, 500):
        r = a.call("register_batch", namespace="team-a", instances=ents[s:s+500], timeout=30)
        print("batch", r["ok"])
b = RawDealer(port, curve("team-b"))
def lat(n=40):
    out = []
    for i in range(n):
        t = time.monotonic(); r = b.call("instances", namespace="team-b", service="billing-secret-svc"); out.append(time.monotonic()-t)
        assert r["ok"], r
        time.sleep(0.02)
    out.sort(); return "p50 %.1f ms p95 %.1f ms max %.1f ms" % (out[len(out)//2]*1e3, out[int(len(out)*.95)]*1e3, out[-1]*1e3)
print("baseline team-b instances:", lat())
op = sys.argv[1]
stop = time.monotonic() + 12
cnt = [0, 0]
def flood():
    d = RawDealer(port, curve("team-a"))
    while time.monotonic() < stop:
        n = 64
        for i in range(n):
            if op == "list": d.send("config_list", namespace="team-a", group="DEFAULT_GROUP", page_size=1000)
            else: d.send("instances", namespace="team-a", service="wide", healthy_only=False)
        rs = d.replies(n, 60); cnt[0] += n; cnt[1] += sum(not r["ok"] for r in rs)
    d.close()
ths = [threading.Thread(target=flood) for _ in range(2)]
for t in ths: t.start()
time.sleep(2)
print(f"under team-a {op} flood, team-b instances:", lat())
for t in ths: t.join()
print("team-a sent", cnt[0], "refused", cnt[1])
