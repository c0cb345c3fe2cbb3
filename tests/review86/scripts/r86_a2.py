import sys, time, json, re, subprocess
sys.path.insert(0, "/work/main/tests/review86")
import docclient as d
import msgpack, zmq
nodes = d.start_cluster(3)
addrs = [n.address for n in nodes]
try:
    for a in addrs: print("ready", a, d.wait_ready(a, timeout=30))
    cs = {a: d.DocClient(a) for a in addrs}
    cl = cs[addrs[0]].cluster()
    print("cluster keys", list(cl.keys()), [ (m["id"], m["state"], m["address"], m.get("announced")) for m in cl["members"]])
    print("cluster config", cl.get("config"))
    print("member keys", list(cl["members"][0].keys()))
    ping = cs[addrs[0]].ping(); print("ping in cluster", ping)
    # pick services: for each, owner
    for svc in ["orders", "payments", "users", "stock"]:
        o = d.service_owner_from_cluster(cl, svc)
        print(svc, "owner", o["id"])
    svc = "orders"
    o = d.service_owner_from_cluster(cl, svc)["address"]
    non = [a for a in addrs if a != o]
    fw, third = non[0], non[1]
    st = {a: cs[a].ok("stats") for a in addrs}
    print("forwarded before", {a: st[a]["forwarded"] for a in addrs})
    # direct write to owner
    r = cs[o].register(svc, "10.0.0.5", 8080, direct=True); print("direct register at owner", r)
    # through a non-owner
    r = cs[fw].register(svc, "10.0.0.6", 8080); print("register via non-owner", r)
    print("read at forwarder immediately", [i["ip"] for i in cs[fw].instances(svc)["result"]["instances"]])
    print("read at owner", [i["ip"] for i in cs[o].instances(svc)["result"]["instances"]])
    print("read at third", [i["ip"] for i in cs[third].instances(svc)["result"]["instances"]])
    st2 = {a: cs[a].ok("stats") for a in addrs}
    print("forwarded after", {a: st2[a]["forwarded"] for a in addrs})
    print("requests at owner", st2[o]["requests"])
    # direct to a non-owner (wrong guess): still works
    r = cs[third].register(svc, "10.0.0.7", 8080, direct=True); print("direct to non-owner", r)
    st3 = {a: cs[a].ok("stats") for a in addrs}
    print("forwarded after wrong direct", {a: st3[a]["forwarded"] for a in addrs})
    # beat via non-owner
    print("beat via third", cs[third].beat(svc, "10.0.0.6", 8080))
    # deregister via third, read there
    r = cs[third].deregister(svc, "10.0.0.6", 8080); print("dereg via third", r)
    print("read third", [i["ip"] for i in cs[third].instances(svc)["result"]["instances"]])
    # ping members_up
    for a in addrs: print("ping", a, cs[a].ping())
    # deadline in the past
    print("late write", cs[fw].register(svc, "10.0.0.9", 80, deadline=d.now_ms()-5000))
    print("deadline ok", cs[fw].register(svc, "10.0.0.9", 80, deadline=d.now_ms()+1500))
    # CLI view
    print(subprocess.run(["meshreg","instances",svc,"--all","-s",addrs[2]],capture_output=True,text=True).stdout)
finally:
    for x in nodes: x.stop()
