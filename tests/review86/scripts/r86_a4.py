import sys, time, json, re, subprocess, hashlib
sys.path.insert(0, "/work/main/tests/review86")
import docclient as d
import msgpack, zmq
doc = open("/work/main/docs/PROTOCOL.md").read()
def docobj(name):
    m = re.search(r"<!-- check: %s -->\n```[a-z]*\n(.*?)```" % re.escape(name), doc, re.S)
    hx = m.group(1).split("bytes:\n",1)[1]
    return msgpack.unpackb(bytes.fromhex(hx.replace("\n"," ")), raw=False)
nodes = d.start_cluster(3)
addrs = [n.address for n in nodes]
try:
    for a in addrs: d.wait_ready(a, timeout=30)
    cs = {a: d.DocClient(a) for a in addrs}
    cl = cs[addrs[0]].cluster()
    did = "app.yaml"
    o = d.config_owner_from_cluster(cl, did); print("config owner", o)
    non = [a for a in addrs if a != o]
    # listener on non[1]
    s = d.DocSub(d.notify_address(non[1]))
    s.subscribe(d.config_topic(did))
    lr = cs[non[1]].call("config_listen", data_id=did, revision=0); print("listen before", lr)
    time.sleep(0.3)
    rid = d.new_request_id()
    r = cs[non[0]].call("config_publish", timeout=3, data_id=did, content="a: 1", type="yaml", if_revision=0, request_id=rid, deadline=d.now_ms()+3000)
    print("publish via non-owner", r)
    res = r["result"]
    exp = docobj("reply:config_publish")["result"]
    print("key order same as doc", list(res.keys()) == list(exp.keys()), list(res.keys()))
    print("origin", res["origin"], "owner", o, "md5 ok", res["md5"] == hashlib.md5(b"a: 1").hexdigest(), "modified_by", repr(res["modified_by"]))
    r2 = cs[non[0]].call("config_publish", data_id=did, content="a: 1", type="yaml", if_revision=0, request_id=rid, resend=True, deadline=d.now_ms()+3000)
    print("resend same id", r2["ok"], r2.get("result",{}).get("revision"), r2.get("error"))
    m, seen = s.recv_until(lambda b: b.get("kind")=="config", 3); print("config notif", m and (m[0], m[2]))
    # CAS conflict
    r = cs[non[1]].call("config_publish", data_id=did, content="a: 2", if_revision=0, request_id=d.new_request_id()); print("CAS conflict", r)
    r = cs[o].call("config_publish", data_id=did, content="a: 2", if_revision=1, request_id=d.new_request_id(), echo=False); print("CAS ok (echo false)", r)
    m, seen = s.recv_until(lambda b: b.get("kind")=="config" and b["revision"]==2, 3); print("notif rev2", m and m[2])
    g = cs[non[1]].call("config_get", data_id=did, min_revision=2); print("get", g["result"]["content"], g["result"]["revision"], g["result"]["type"])
    g1 = cs[non[1]].call("config_get", data_id=did, revision=1); print("get rev1", g1["result"]["content"])
    h = cs[non[0]].call("config_history", data_id=did); print("history", [(i["revision"], i["content"], i["change"]) for i in h["result"]["items"]], h["result"]["next_cursor"])
    lst = cs[non[0]].call("config_list"); print("list", [(i["data_id"], i["revision"], "content" in i) for i in lst["result"]["items"]], lst["result"]["next_cursor"])
    cli = subprocess.run(["meshreg","config","get",did,"-s",non[1],"--json"],capture_output=True,text=True); print("CLI json", cli.returncode, cli.stdout.strip()[:400], cli.stderr.strip()[:200])
    cli = subprocess.run(["meshreg","config","get",did,"-s",non[1]],capture_output=True,text=True); print("CLI", repr(cli.stdout), cli.stderr.strip()[:200])
    # listen with md5
    md5_2 = hashlib.md5(b"a: 2").hexdigest()
    print("listen same", cs[non[1]].call("config_listen", data_id=did, revision=2, md5=md5_2)["result"])
    print("listen other md5", cs[non[1]].call("config_listen", data_id=did, revision=2, md5="0"*32)["result"]["entry"] is not None)
    # delete
    r = cs[non[1]].call("config_delete", data_id=did, if_revision=2, request_id=d.new_request_id()); print("delete", r["ok"], r.get("result",{}).get("revision"), r.get("result",{}).get("deleted"), r.get("error"))
    m, seen = s.recv_until(lambda b: b.get("kind")=="config" and b.get("deleted"), 3); print("notif delete", m and m[2])
    g = cs[non[1]].call("config_get", data_id=did); print("get deleted", g)
    r = cs[non[1]].call("config_delete", data_id=did, request_id=d.new_request_id()); print("delete again", r.get("error"))
    print("listen after delete", cs[non[0]].call("config_listen", data_id=did, revision=2, md5=md5_2)["result"])
    r = cs[non[1]].call("config_publish", data_id=did, content="b", if_revision=0, request_id=d.new_request_id()); print("publish after delete if_revision 0", r["ok"], r.get("result",{}).get("revision"), r.get("error"))
    cli = subprocess.run(["meshreg","config","get",did,"-s",non[0]],capture_output=True,text=True); print("CLI after", repr(cli.stdout), cli.stderr.strip()[:200])
    # request_id reuse with another content
    r = cs[non[1]].call("config_publish", data_id=did, content="zzz", request_id=rid); print("reuse id", r.get("error") or r["result"]["revision"])
    # rollback
    r = cs[non[1]].call("config_rollback", data_id=did, revision=1, request_id=d.new_request_id()); print("rollback", r.get("error") or (r["result"]["revision"], r["result"]["content"], r["result"]["change"]))
    # min_revision ahead
    t0=time.time(); r = cs[non[1]].call("config_get", data_id=did, min_revision=99); print("min_revision ahead", r.get("error"), "%.2fs"%(time.time()-t0))
    # prefix subscription
    s2 = d.DocSub(d.notify_address(non[0])); s2.subscribe(b"\x00config\x00public\x00"); time.sleep(0.3)
    cs[o].call("config_publish", data_id="other.txt", content="x", request_id=d.new_request_id())
    m, seen = s2.recv_until(lambda b: b.get("kind")=="config", 3); print("prefix config notif", m and (m[0], m[2]))
finally:
    for x in nodes: x.stop()
