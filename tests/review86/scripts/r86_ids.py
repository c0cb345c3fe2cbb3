import sys, time, json, re, subprocess, os
sys.path.insert(0, "/work/main/tests/review86")
import docclient as d
import msgpack, zmq
K = "/tmp/r86keys/"  # see REPORT.md, area 6: meshreg keygen cluster orders-app reader unknown, acl.toml
base = d.free_base(3)
addrs = ["127.0.0.1:%d" % (base+4*i) for i in range(3)]
ids = ["node-c", "node-a", "node-b"]
nodes = [d.Node(base+4*i, peers=addrs, extra=["--node-id", ids[i], "--key", K+"cluster.key", "--acl", K+"acl.toml"]) for i in range(3)]
ck = d.read_cert(K+"cluster.key")
adm = d.Curve(ck["public-key"], ck["public-key"], ck["secret-key"])
cur = d.Curve.from_files(K+"orders-app.key", K+"cluster.pub")
try:
    for a in addrs: d.wait_ready(a, curve=cur, timeout=30)
    cs = {a: d.DocClient(a, curve=cur) for a in addrs}
    cl = cs[addrs[0]].cluster()
    print([(m["id"], m["address"], m["state"], m["announced"], m["configured"]) for m in cl["members"]], cl.get("counts"))
    wrong = 0
    for i in range(12):
        svc = "orders-%d" % i
        o = d.service_owner_from_cluster(cl, svc)["address"]
        before = {a: d.DocClient(a, curve=adm).ok("stats")["forwarded"] for a in addrs}
        r = cs[o].register(svc, "10.0.0.5", 8080, direct=True)
        after = {a: d.DocClient(a, curve=adm).ok("stats")["forwarded"] for a in addrs}
        if before != after or not r["ok"]: wrong += 1; print("forwarded!", svc, o, r)
    print("service owner by id: wrong guesses", wrong)
    adm_c = {a: d.DocClient(a, curve=adm) for a in addrs}
    wrongc = 0
    for i in range(10):
        did = "cfg-%d.txt" % i
        o = d.config_owner_from_cluster(cl, did)
        r = adm_c[addrs[0]].call("config_publish", data_id=did, content="x", request_id=d.new_request_id())
        if r["result"]["origin"] != o: wrongc += 1; print("config owner mismatch", did, o, r["result"]["origin"])
    print("config owner by announced: wrong", wrongc)
    # handshakes refused by non-curve client
    st0 = adm_c[addrs[0]].ok("stats")["handshakes_refused"]
    p = d.DocClient(addrs[0])
    try: p.call("ping", timeout=1.0)
    except d.Timeout: print("plain client: no reply")
    time.sleep(0.5)
    st1 = adm_c[addrs[0]].ok("stats")["handshakes_refused"]
    u = d.DocClient(addrs[0], curve=d.Curve.from_files(K+"unknown.key", K+"cluster.pub"))
    try: u.call("ping", timeout=1.0)
    except d.Timeout: print("unknown key: no reply")
    time.sleep(0.5)
    st2 = adm_c[addrs[0]].ok("stats")["handshakes_refused"]
    print("handshakes_refused", st0, "after plain", st1, "after unknown key", st2)
    # client key on peer port P+3
    host, port = addrs[0].rsplit(":",1)
    pp = d.DocClient("%s:%d" % (host, int(port)+3), curve=cur)
    try: print("client key on P+3", pp.call("ping", timeout=1.0))
    except d.Timeout: print("client key on P+3: no reply")
    time.sleep(0.3)
    print("handshakes_refused after P+3", adm_c[addrs[0]].ok("stats")["handshakes_refused"])
    # subscription with CURVE, cross-node push
    s = d.DocSub(d.notify_address(addrs[1]), curve=cur); s.subscribe(d.service_topic("orders-1"))
    m = s.recv(3); print("curve sub sync", m and m[2]["kind"])
    cs[addrs[2]].deregister("orders-1", "10.0.0.5", 8080)
    m, seen = s.recv_until(lambda b: b["kind"]=="delta", 3); print("curve sub delta", m and m[2]["remove"])
finally:
    for x in nodes: x.stop()
