"""Probe: team-a churns CURVE handshakes (<= 2,000 connections in <= 20 s); how long does a
fresh team-b connection take to get a ping answered?"""
from probe_common import *
import threading
port = PORTS[1]
def fresh_ping(name):
    t = time.monotonic()
    r = raw_request(port, {"v": 1, "id": 1, "op": "ping"}, 10, curve(name))
    return (time.monotonic() - t) * 1e3, r["ok"]
print("baseline team-b fresh connection ping: %.0f ms %s" % fresh_ping("team-b"))
stop = time.monotonic() + 20; made = [0]
def churn():
    ctx = zmq.Context(); keys = curve("team-a")
    while time.monotonic() < stop and made[0] < 2000:
        socks = []
        for i in range(100):
            s = ctx.socket(zmq.DEALER); s.setsockopt(zmq.LINGER, 0)
            s.curve_publickey, s.curve_secretkey, s.curve_serverkey = keys
            s.connect(f"tcp://127.0.0.1:{port}"); socks.append(s)
        for s in socks: s.send_multipart([b"", msgpack.packb({"v":1,"id":1,"op":"ping"})])
        for s in socks: s.poll(2000); s.close()
        made[0] += 100
    ctx.term()
th = threading.Thread(target=churn); th.start(); time.sleep(2)
lat = [fresh_ping("team-b") for _ in range(5)]
print("during churn team-b fresh pings:", ["%.0f ms" % l for l, ok in lat])
th.join(); print("team-a handshakes", made[0])
