import sys, time, signal
sys.path.insert(0, "/work/main/tests/review86")
import docclient as d
nodes = d.start_cluster(3)
addrs = [n.address for n in nodes]
try:
    for a in addrs: d.wait_ready(a, timeout=30)
    cs = {a: d.DocClient(a) for a in addrs}
    cl = cs[addrs[0]].cluster()
    svc = "orders"
    o = d.service_owner_from_cluster(cl, svc)["address"]
    fw = [a for a in addrs if a != o][0]
    cs[fw].register(svc, "10.0.0.5", 8080)
    on = nodes[addrs.index(o)]
    on.proc.send_signal(signal.SIGSTOP)
    try:
        t0 = time.time(); r = cs[fw].beat(svc, "10.0.0.5", 8080, timeout=5); print("beat with owner stopped: %.2fs" % (time.time()-t0), r["ok"], r.get("error"))
        t0 = time.time(); r = cs[fw].register(svc, "10.0.0.6", 8080, deadline=d.now_ms()+1500, timeout=5); print("register w/ deadline (1s attempt + 0.5): %.2fs" % (time.time()-t0), r["ok"], r.get("error"))
        t0 = time.time(); r = cs[fw].register(svc, "10.0.0.7", 8080, timeout=5); print("register no deadline: %.2fs" % (time.time()-t0), r["ok"])
        did = "app.yaml"; co = d.config_owner_from_cluster(cl, did)
        print("config owner is stopped node:", co == o)
        # find a data id owned by the stopped node
        for i in range(50):
            did = "x%d.txt" % i
            if d.config_owner_from_cluster(cl, did) == o: break
        t0 = time.time(); r = cs[fw].call("config_publish", data_id=did, content="v", request_id=d.new_request_id(), deadline=d.now_ms()+3000, timeout=5)
        print("config publish, owner stopped: %.2fs" % (time.time()-t0), r["ok"], r.get("error"))
    finally:
        on.proc.send_signal(signal.SIGCONT)
finally:
    for x in nodes: x.stop()
