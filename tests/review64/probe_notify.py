"""Probe: team-a holds a non-reading subscriber on its own namespace and makes ~1,500
large deltas; does team-b's watch on the same node get its changes late?"""
from probe_common import *
import threading
from meshreg import Client
port = PORTS[0]
def st():
    return raw_request(port, {"v":1,"id":1,"op":"stats"}, 3, curve("admin"))["result"]
pub, sec, spub = curve("team-a")
sub = zmq.Context.instance().socket(zmq.SUB)
sub.setsockopt(zmq.LINGER, 0); sub.setsockopt(zmq.RCVHWM, 1); sub.setsockopt(zmq.RCVBUF, 4096)
sub.curve_publickey, sub.curve_secretkey, sub.curve_serverkey = pub, sec, spub
sub.connect(f"tcp://127.0.0.1:{port+1}"); sub.setsockopt(zmq.SUBSCRIBE, b"team-a\x00")
time.sleep(1)
cb = Client([f"127.0.0.1:{port}"], key=W+"/team-b.key", server_key=W+"/cluster.pub", namespace="team-b")
seen = {}
def cbk(xs):
    for x in xs: seen.setdefault(x.port, time.monotonic())
cb.subscribe("watched", cbk)
def lat(base):
    out = []
    for i in range(8):
        p = base + i; t = time.monotonic()
        cb.register("watched", "10.8.0.1", p)
        deadline = t + 5
        while p not in seen and time.monotonic() < deadline: time.sleep(0.005)
        out.append((seen.get(p, 99) - t) * 1e3)
    return "p50 %.0f ms max %.0f ms" % (sorted(out)[4], max(out))
print("baseline team-b watch latency:", lat(1000))
a = RawDealer(port, curve("team-a"))
meta = {f"k{j}": "m" * 1000 for j in range(12)}
t0 = time.monotonic()
for s in range(0, 1500, 100):
    for i in range(s, s + 100):
        a.send("register", namespace="team-a", service=f"noisy{i%20}", ip=f"10.7.{i//250}.{i%250+1}", port=80, metadata=meta)
    rs = a.replies(100, 30); assert all(r["ok"] for r in rs), rs[0]
print("team-a wrote 1500 deltas in %.1fs" % (time.monotonic() - t0))
print("under load team-b watch latency:", lat(2000))
s = st(); print({k: s[k] for k in ("notifications_held", "notifications_held_total", "notifications_sent_lossy")})
for i in range(1500):
    a.send("deregister", namespace="team-a", service=f"noisy{i%20}", ip=f"10.7.{i//250}.{i%250+1}", port=80)
a.replies(1500, 60)
sub.close(); cb.close()
