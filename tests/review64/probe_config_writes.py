"""Probe: team-a pipelines small config updates (its own data id, <= 3,000 writes, <= 20 s);
how slow do team-b's config publishes get?"""
from probe_common import *
import threading
port = PORTS[0]
b = RawDealer(port, curve("team-b"))
def lat(n=15):
    out = []
    for i in range(n):
        t = time.monotonic(); r = b.call("config_publish", namespace="team-b", data_id="b-live", content=f"v{i}", timeout=30)
        out.append(time.monotonic()-t); assert r["ok"], r
    out.sort(); return "p50 %.0f ms max %.0f ms" % (out[len(out)//2]*1e3, out[-1]*1e3)
print("baseline team-b publish:", lat())
stop = time.monotonic() + 15; sent = [0, 0]
def flood():
    d = RawDealer(port, curve("team-a"))
    while time.monotonic() < stop and sent[0] < 3000:
        for i in range(100): d.send("config_publish", namespace="team-a", data_id=f"hot-{i%10}", content=f"c{sent[0]+i}")
        rs = d.replies(100, 60); sent[0] += 100; sent[1] += sum(not r["ok"] for r in rs)
th = threading.Thread(target=flood); th.start(); time.sleep(1.5)
print("under team-a flood, team-b publish:", lat())
th.join(); print("team-a writes", sent)
