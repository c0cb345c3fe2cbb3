import sys, time, json
sys.path.insert(0, "/work/main/tests/review86")
import docclient as d
import msgpack
nodes = d.start_cluster(1, extra=["--unhealthy-after", "3", "--evict-after", "6", "--check-interval", "0.5"])
n = nodes[0]
try:
    print("ping", d.wait_ready(n.address))
    c = d.DocClient(n.address)
    # raw ping bytes
    rid = 7
    c.send_frames([b"", msgpack.packb({"v":1,"id":7,"op":"ping"})])
    fr = c.recv_frames()
    print("ping frames", len(fr), fr[0], d.hexdump(fr[1]))
    r = c.register("orders", "10.0.0.5", 8080, metadata={"zone": "eu-1"})
    print("register", r)
    stamp = r["result"]["stamp"]
    print("beat", c.beat("orders", "10.0.0.5", 8080))
    print("instances", c.instances("orders"))
    print("dereg", c.deregister("orders", "10.0.0.5", 8080, after=stamp))
    print("instances after", c.instances("orders")["result"]["instances"])
    print("beat after dereg", c.beat("orders", "10.0.0.5", 8080))
    # sessions
    so = c.call("session_open")
    print("session_open", so)
    sid = so["result"]["session"]
    print("reg in session", c.register("orders", "10.0.0.6", 81, session=sid))
    print("renew", c.call("session_renew", session=sid))
    t0=time.time()
    while time.time()-t0 < 8:
        c.call("session_renew", session=sid); time.sleep(1)
    print("after 8s of renewals", c.instances("orders")["result"]["instances"])
    print("renew list", c.call("session_renew", session=sid, list=True))
    # lapse
    t0=time.time(); seen=[]
    while time.time()-t0 < 15:
        ins = c.instances("orders")["result"]["instances"]
        seen.append((round(time.time()-t0,1), [(i["ip"], i["healthy"]) for i in ins]))
        if not ins: break
        time.sleep(0.5)
    print("lapse", seen[0], seen[-1], [s for s in seen if s[1] and not s[1][0][1]][:1])
    print("renew after lapse", c.call("session_renew", session=sid))
    print("reg2", c.register("orders", "10.0.0.7", 82, session=sid))
    print("close", c.call("session_close", session=sid))
    print("instances after close", c.instances("orders")["result"]["instances"])
    print("close again", c.call("session_close", session=sid))
    print("stats timings", c.ok("stats")["timings"])
finally:
    for x in nodes: x.stop()
