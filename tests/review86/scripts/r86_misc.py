import sys, time, json, re, subprocess, os
sys.path.insert(0, "/work/main/tests/review86")
import docclient as d
import msgpack, zmq
doc = open("/work/main/docs/PROTOCOL.md").read()
def docobj(name):
    m = re.search(r"<!-- check: %s -->\n```[a-z]*\n(.*?)```" % re.escape(name), doc, re.S)
    hx = m.group(1).split("bytes:\n",1)[1]
    return msgpack.unpackb(bytes.fromhex(hx.replace("\n"," ")), raw=False)
nodes = d.start_cluster(1, extra=["--unhealthy-after", "2", "--evict-after", "4", "--check-interval", "0.5"])
n = nodes[0]
try:
    d.wait_ready(n.address)
    # section 8 verbatim
    code = re.search(r"<!-- run: minimal-client -->\n```python\n(.*?)```", doc, re.S).group(1)
    code = code.replace('tcp://127.0.0.1:7800', 'tcp://'+n.address).replace("BEAT_INTERVAL = 5.0", "BEAT_INTERVAL = 0.3")
    t0=time.time(); exec(compile(code, "section8", "exec"), {}); print("section 8 ran OK in %.1fs" % (time.time()-t0))
    c = d.DocClient(n.address)
    # digest
    sid = d.new_session_id()
    c.ok("session_open", session=sid)
    c.ok("register", service="orders", ip="10.0.0.1", port=80, session=sid)
    c.ok("register", service="orders", ip="10.0.0.2", port=80, session=sid)
    r = c.ok("session_renew", session=sid)
    h = lambda ip: d.xxh64(b"\x00".join([b"DEFAULT_GROUP", b"orders", ip.encode(), b"80", b"DEFAULT"]))
    print("digest node", r["digest"], "mine", (h("10.0.0.1")+h("10.0.0.2")) % 2**64, "doc", 17139908189660852558)
    print("uppercase session", c.call("session_open", session=sid.upper()).get("error"))
    c.ok("session_close", session=sid)
    # instances reply structure vs doc
    s = d.DocSub(d.notify_address(n.address)); s.subscribe(d.service_topic("hx")); s.recv(2)
    c.ok("register", service="hx", ip="10.0.0.5", port=8080, metadata={"zone": "eu-1"})
    ir = c.ok("instances", service="hx", healthy_only=True)
    print("instances keys", list(ir.keys()) == list(docobj("reply:instances")["result"].keys()), list(ir.keys()))
    # health sweep notifications
    m, seen = s.recv_until(lambda b: b["kind"]=="delta" and any(not i["healthy"] for i in b["upsert"]), 6)
    print("unhealthy delta", m and m[2]["upsert"])
    m, seen = s.recv_until(lambda b: b["kind"]=="delta" and b["remove"], 6)
    print("evict delta", m and m[2]["remove"])
    # nil fields, int weight
    print("nil optionals", c.call("register", service="nil", ip="10.0.0.5", port=1, cluster=None, metadata=None, weight=None, enabled=None, namespace=None, group=None)["ok"])
    print("weight int", c.ok("instances", service="nil")["instances"][0]["weight"], c.call("register", service="w", ip="10.0.0.5", port=1, weight=3)["ok"], c.ok("instances", service="w")["instances"][0]["weight"])
    # bad utf8 key
    body = b"\x86\xa1v\x01\xa2id\x07\xa2op\xa8register\xa7service\xa1x\xa2ip\xa810.0.0.5\xa8metadata\x81\xa1\xff\xa1v"
    c.send_frames([b"", body]); print("bad utf8 key", msgpack.unpackb(c.recv_frames()[-1]))
    # REQ + correlate
    rq = zmq.Context.instance().socket(zmq.REQ); rq.setsockopt(zmq.REQ_RELAXED, 1); rq.setsockopt(zmq.REQ_CORRELATE, 1); rq.linger=0
    rq.connect("tcp://"+n.address); rq.send(msgpack.packb({"v":1,"id":99,"op":"ping"}))
    if rq.poll(2000): print("REQ correlate", msgpack.unpackb(rq.recv())["ok"])
    else: print("REQ correlate: no reply")
    rq.close()
    # services paging
    print("services p1", c.ok("services", page_size=1))
    # bad subscription forms
    s2 = d.DocSub(d.notify_address(n.address)); s2.subscribe(b"public\x00DEFAULT_GROUP\x00h"); s2.subscribe(b"pub")
    c.ok("register", service="hx", ip="10.0.0.9", port=1)
    print("bad forms got", s2.recv(1))
    # register_batch reply
    rb = c.call("register_batch", instances=[{"service":"orders","ip":"10.0.0.5","port":8080},{"service":"orders","ip":"10.0.0.6","port":0},{"service":"payments","ip":"10.0.0.7","port":9000,"metadata":{"zone":"eu-1"}}])
    print("register_batch", rb)
    print("update", c.call("update", service="orders", ip="10.0.0.5", port=8080, weight=0.0), c.ok("instances", service="orders")["instances"][0]["weight"])
    print("service_set", c.call("service_set", service="orders", protect_threshold=0.5, metadata={"owner":"team-a"}))
    print("revisions", c.call("revisions", epoch=ir["epoch"], services=[["DEFAULT_GROUP","hx",ir["revision"],True],["DEFAULT_GROUP","zz",0,False]]))
    print("namespaces", c.call("namespaces"))
    # stats handshakes_refused baseline (no curve node)
    print("stats security", c.ok("stats").get("security"))
finally:
    for x in nodes: x.stop()
