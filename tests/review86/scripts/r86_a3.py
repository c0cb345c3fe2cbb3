import sys, time, json, re, subprocess, signal
sys.path.insert(0, "/work/main/tests/review86")
import docclient as d
import msgpack, zmq
doc = open("/work/main/docs/PROTOCOL.md").read()
def docobj(name):
    m = re.search(r"<!-- check: %s -->\n```[a-z]*\n(.*?)```" % re.escape(name), doc, re.S)
    hx = m.group(1).split("bytes:\n",1)[1]
    return msgpack.unpackb(bytes.fromhex(hx.replace("\n"," ")), raw=False)
# single fresh node: compare sync / delta bytes
nodes = d.start_cluster(1)
n = nodes[0]
try:
    d.wait_ready(n.address)
    c = d.DocClient(n.address); s = d.DocSub(d.notify_address(n.address))
    s.subscribe(d.service_topic("orders"))
    m = s.recv(3); print("first notification", m and (m[0], m[2]))
    ep = c.ping()["epoch"]
    for name, mm in [("notify:sync", m)]:
        o = docobj(name); o["epoch"] = ep
        print(name, "MATCH" if msgpack.packb(o) == mm[1] else "DIFF", mm[0] == b"public\x00DEFAULT_GROUP\x00orders\x00")
    c.register("orders", "10.0.0.5", 8080, metadata={"zone": "eu-1"})
    m = s.recv(3); o = docobj("notify:delta-register"); o["epoch"] = ep
    print("delta-register", "MATCH" if msgpack.packb(o) == m[1] else ("DIFF", m[2]))
    c.deregister("orders", "10.0.0.5", 8080)
    m = s.recv(3); o = docobj("notify:delta-deregister"); o["epoch"] = ep
    print("delta-deregister", "MATCH" if msgpack.packb(o) == m[1] else ("DIFF", m[2]))
    # instances reply compare
    c.register("orders", "10.0.0.5", 8080, metadata={"zone": "eu-1"})
finally:
    for x in nodes: x.stop()

# cluster push + failover
nodes = d.start_cluster(3, extra=["--peer-timeout", "1.5"])
addrs = [n.address for n in nodes]
try:
    for a in addrs: d.wait_ready(a, timeout=30)
    cs = {a: d.DocClient(a) for a in addrs}
    A, B, C = addrs
    s = d.DocSub(d.notify_address(A))
    s.subscribe(d.service_topic("orders"))
    ns = d.DocSub(d.notify_address(A)); ns.subscribe(b"public\x00")
    m = s.recv(3); print("sync on A", m and m[2])
    snap = cs[A].instances("orders")["result"]; print("pull", snap["epoch"], snap["revision"])
    cs[C].register("orders", "10.0.0.5", 8080)  # through C
    m, seen = s.recv_until(lambda b: b["kind"] == "delta", 3); print("delta on A for write via C", m and m[2])
    m2, seen2 = ns.recv_until(lambda b: b["kind"] == "delta", 3); print("ns-prefix sub got", [x[2]["kind"] for x in seen2])
    cs[B].deregister("orders", "10.0.0.5", 8080)
    m, seen = s.recv_until(lambda b: b["kind"] == "delta" and b["remove"], 3); print("delta remove", m and m[2]["remove"], m and (m[2]["base"], m[2]["revision"]))
    # failover: kill A
    cs[B].register("orders", "10.0.0.6", 8080)
    time.sleep(0.3)
    while s.recv(0.2): pass
    nodes[0].kill()
    t0 = time.time()
    s.move(d.notify_address(B))
    m, seen = s.recv_until(lambda b: True, 3)
    print("after move: first from B", m and m[2], "after %.2fs" % (time.time()-t0))
    cB = cs[B]
    snapB = cB.instances("orders")["result"]; print("re-pull B", snapB["epoch"], snapB["revision"], [i["ip"] for i in snapB["instances"]])
    cB.register("orders", "10.0.0.7", 8080)
    m, seen = s.recv_until(lambda b: b["kind"]=="delta", 3); print("delta from B", m and (m[2]["epoch"]==snapB["epoch"], m[2]["base"], m[2]["revision"]))
    print("cluster from B", [(x["id"], x["state"]) for x in cB.cluster()["members"]])
finally:
    for x in nodes: x.stop()
