"""Probe: can team-a's non-reading connections fill the node-wide 128 MiB reply budget so
that team-b's larger reads are dropped?  Bounded: 24 connections x 12 requests."""
from probe_common import *
import json, sys
from meshreg import Client

port = PORTS[0]
def st():
    return raw_request(port, {"v":1,"id":1,"op":"stats"}, 3, curve("admin"))["result"]
def rss(pidfile):
    pid = open(os.path.join(W, pidfile)).read().strip()
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS"): return l.split()[1] + " kB"

a = RawDealer(port, curve("team-a"))
print("team-a publish big:", a.call("config_publish", namespace="team-a", data_id="big.txt", content="x" * 1_000_000, timeout=10)["ok"])
b = RawDealer(port, curve("team-b"))
print("team-b publish mid:", b.call("config_publish", namespace="team-b", data_id="mid.json", content="y" * 200_000, timeout=10)["ok"])

cb = Client([f"127.0.0.1:{port}"], key=W+"/team-b.key", server_key=W+"/cluster.pub", namespace="team-b", timeout=5.0)
t = time.monotonic(); e = cb.config_get("mid.json"); print("baseline team-b config_get: %.3fs" % (time.monotonic()-t), len(e.content))
print("RSS before", rss(f"node{port}.pid"))

pub, sec, spub = curve("team-a")
socks = []
for i in range(int(sys.argv[1]) if len(sys.argv) > 1 else 24):
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0); s.setsockopt(zmq.RCVHWM, 1); s.setsockopt(zmq.RCVBUF, 4096)
    s.curve_publickey, s.curve_secretkey, s.curve_serverkey = pub, sec, spub
    s.connect(f"tcp://127.0.0.1:{port}")
    for k in range(12):
        s.send_multipart([b"", msgpack.packb({"v":1,"id":k+1,"op":"config_get","namespace":"team-a","data_id":"big.txt"})])
    socks.append(s)
print("team-a publish 70k:", a.call("config_publish", namespace="team-a", data_id="fill.txt", content="z" * 70_000, timeout=10)["ok"])
time.sleep(3)
for i in range(4):
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0); s.setsockopt(zmq.RCVHWM, 1); s.setsockopt(zmq.RCVBUF, 4096)
    s.curve_publickey, s.curve_secretkey, s.curve_serverkey = pub, sec, spub
    s.connect(f"tcp://127.0.0.1:{port}")
    for k in range(100):
        s.send_multipart([b"", msgpack.packb({"v":1,"id":k+1,"op":"config_get","namespace":"team-a","data_id":"fill.txt"})])
    socks.append(s)
time.sleep(4)
rb = RawDealer(port, curve("team-b"))
for k in range(3):
    rb.send("config_get", namespace="team-b", data_id="mid.json")
    try:
        print("raw team-b config_get:", rb.replies(1, 3.0)[0]["ok"])
    except AssertionError as ex:
        print("raw team-b config_get: NO REPLY in 3s", ex)
r = st()["replies"]; print("replies stats:", json.dumps(r))
print("RSS during", rss(f"node{port}.pid"))
for attempt in range(3):
    t = time.monotonic()
    try:
        e = cb.config_get("mid.json"); print("team-b config_get under load: ok %.3fs" % (time.monotonic()-t))
    except Exception as ex:
        print("team-b config_get under load FAILED after %.3fs: %s: %s" % (time.monotonic()-t, type(ex).__name__, str(ex)[:300]))
print("replies stats after:", json.dumps(st()["replies"]))
time.sleep(25)
print("after 25s more, replies stats:", json.dumps(st()["replies"]))
t = time.monotonic()
try:
    e = cb.config_get("mid.json"); print("team-b config_get 30s later: ok %.3fs" % (time.monotonic()-t))
except Exception as ex:
    print("team-b config_get 30s later FAILED: %s" % (str(ex)[:200]))
for s in socks: s.close()
time.sleep(2)
print("RSS after close", rss(f"node{port}.pid"))
t = time.monotonic(); e = cb.config_get("mid.json"); print("team-b after team-a closed: %.3fs" % (time.monotonic()-t))
cb.close()
