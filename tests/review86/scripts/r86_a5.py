import sys, time, json, re
sys.path.insert(0, "/work/main/tests/review86")
import docclient as d
import msgpack, zmq
doc = open("/work/main/docs/PROTOCOL.md").read()
def docbytes(name):
    m = re.search(r"<!-- check: %s -->\n```[a-z]*\n(.*?)```" % re.escape(name), doc, re.S)
    blk = m.group(1)
    hx = blk.split("bytes:\n",1)[1]
    return bytes.fromhex(hx.replace("\n"," "))
nodes = d.start_cluster(1)
n = nodes[0]
def cmp(name, got):
    exp = docbytes(name)
    print(("MATCH " if exp == got else "DIFF  ") + name, len(exp), len(got))
    if exp != got:
        print("  doc:", msgpack.unpackb(exp, raw=False, strict_map_key=False))
        print("  got:", msgpack.unpackb(got, raw=False, strict_map_key=False))
try:
    d.wait_ready(n.address)
    c = d.DocClient(n.address)
    def raw(body_frames, t=3):
        c.send_frames(body_frames); return c.recv_frames(t)
    # requests: our encoder vs doc
    for name, body in [
        ("request:ping", {"v":1,"id":7,"op":"ping"}),
        ("request:cluster", {"v":1,"id":7,"op":"cluster"}),
        ("request:beat", {"v":1,"id":7,"op":"beat","namespace":"public","group":"DEFAULT_GROUP","service":"orders","ip":"10.0.0.5","port":8080,"cluster":"DEFAULT"}),
        ("request:beat-short", {"v":1,"id":7,"op":"beat","service":"orders","ip":"10.0.0.5","port":8080}),
        ("request:register", {"v":1,"id":7,"op":"register","namespace":"public","group":"DEFAULT_GROUP","service":"orders","ip":"10.0.0.5","port":8080,"cluster":"DEFAULT","weight":1.0,"enabled":True,"metadata":{"zone":"eu-1"}}),
        ("request:deregister", {"v":1,"id":7,"op":"deregister","namespace":"public","group":"DEFAULT_GROUP","service":"orders","ip":"10.0.0.5","port":8080,"cluster":"DEFAULT"}),
        ("request:config_get", {"v":1,"id":7,"op":"config_get","data_id":"app.yaml","min_revision":1}),
        ("request:config_listen", {"v":1,"id":7,"op":"config_listen","data_id":"app.yaml","revision":1,"md5":"c8e7a5d2b4f3e1a0918273645f6e7d8c"}),
        ("request:config_publish", {"v":1,"id":7,"op":"config_publish","data_id":"app.yaml","content":"a: 2","type":"yaml","request_id":"5f0c6a2e9b1d4c7a8e3f2b6d0a9c1e47"}),
    ]:
        cmp(name, msgpack.packb(body))
    # error replies
    fr = raw([msgpack.packb({"v":1,"id":7,"op":"ping"})]); cmp("error:no-delimiter", fr[-1]); print("  frames", fr[:-1])
    fr = raw([b"", b"\xc1"]); cmp("error:malformed", fr[-1])
    fr = raw([b"", msgpack.packb({"v":2,"id":7,"op":"ping"})]); cmp("error:unsupported-version", fr[-1])
    fr = raw([b"", msgpack.packb({"v":1,"id":7,"op":"watch"})]); cmp("error:unknown-op", fr[-1])
    fr = raw([b"", msgpack.packb({"v":1,"id":7,"op":"register","service":"orders","ip":"10.0.0.5","port":0})]); cmp("error:invalid-argument", fr[-1])
    fr = raw([b"", msgpack.packb({"v":1,"id":7,"op":"register","service":"orders","ip":"10.0.0.5","port":8080,"metadata":{"k%d"%i:"v" for i in range(65)}})]); cmp("error:too-large", fr[-1])
    fr = raw([b"", msgpack.packb({"v":1,"id":7,"op":"beat","service":"orders","ip":"10.0.0.5","port":8080})]); cmp("error:not-found", fr[-1])
    fr = raw([b"", msgpack.packb({"v":1,"id":7,"op":"beat","namespace":"public","group":"DEFAULT_GROUP","service":"orders","ip":"10.0.0.5","port":8080,"cluster":"DEFAULT"})])
    # OK reply with id 7
    fr = raw([b"", msgpack.packb({"v":1,"id":7,"op":"register","service":"orders","ip":"10.0.0.5","port":8080})])
    print("register reply", msgpack.unpackb(fr[-1]))
    fr = raw([b"", msgpack.packb({"v":1,"id":7,"op":"beat","service":"orders","ip":"10.0.0.5","port":8080})]); cmp("reply:ok", fr[-1])
    def show(label, frames):
        fr = raw(frames); print(label, "->", [f for f in fr[:-1]], msgpack.unpackb(fr[-1], raw=False, strict_map_key=False))
    show("empty body", [b"", b""])
    show("two bodies", [b"", msgpack.packb({"v":1,"id":7,"op":"ping"}), b"x"])
    show("v missing", [b"", msgpack.packb({"id":7,"op":"ping"})])
    show("v 1.0", [b"", msgpack.packb({"v":1.0,"id":7,"op":"ping"})])
    show("v true", [b"", msgpack.packb({"v":True,"id":7,"op":"ping"})])
    show("op missing", [b"", msgpack.packb({"v":1,"id":7})])
    show("op digests on P", [b"", msgpack.packb({"v":1,"id":7,"op":"digests"})])
    show("id missing", [b"", msgpack.packb({"v":1,"op":"ping"})])
    show("id -1", [b"", msgpack.packb({"v":1,"id":-1,"op":"ping"})])
    show("id 2^64-1", [b"", msgpack.packb({"v":1,"id":2**64-1,"op":"ping"})])
    show("dup id", [b"", b"\x84\xa1v\x01\xa2id\x0f\xa2id\x10\xa2op\xa4ping"])
    show("bin keys", [b"", msgpack.packb({b"v":1,b"id":7,b"op":"ping"}, use_bin_type=True)])
    show("int keys", [b"", msgpack.packb({1:1,"id":7,"op":"ping"})])
    show("trailing", [b"", msgpack.packb({"v":1,"id":7,"op":"ping"})+b"\x00"])
    show("not a map", [b"", msgpack.packb([1,2])])
    show("port float", [b"", msgpack.packb({"v":1,"id":7,"op":"register","service":"orders","ip":"10.0.0.5","port":8080.0})])
    show("bad service name", [b"", msgpack.packb({"v":1,"id":7,"op":"register","service":"or ders","ip":"10.0.0.5","port":8080})])
    show("service 257", [b"", msgpack.packb({"v":1,"id":7,"op":"register","service":"s"*257,"ip":"10.0.0.5","port":8080})])
    show("namespace 65", [b"", msgpack.packb({"v":1,"id":7,"op":"register","namespace":"n"*65,"service":"x","ip":"10.0.0.5","port":8080})])
    show("cluster @", [b"", msgpack.packb({"v":1,"id":7,"op":"register","service":"x","ip":"10.0.0.5","port":8080,"cluster":"a@b"})])
    show("ip bad", [b"", msgpack.packb({"v":1,"id":7,"op":"register","service":"x","ip":"-bad-","port":8080})])
    show("service bin", [b"", msgpack.packb({"v":1,"id":7,"op":"register","service":b"x","ip":"10.0.0.5","port":8080}, use_bin_type=True)])
    show("service nil", [b"", msgpack.packb({"v":1,"id":7,"op":"register","service":None,"ip":"10.0.0.5","port":8080})])
    show("enabled 1", [b"", msgpack.packb({"v":1,"id":7,"op":"register","service":"x","ip":"10.0.0.5","port":8080,"enabled":1})])
    show("weight 10001", [b"", msgpack.packb({"v":1,"id":7,"op":"register","service":"x","ip":"10.0.0.5","port":8080,"weight":10001})])
    show("bad utf8 md", [b"", msgpack.packb({"v":1,"id":7,"op":"register","service":"x","ip":"10.0.0.5","port":8080,"metadata":{"k":"\udcff"}}, unicode_errors="surrogateescape") if False else b"\x86\xa1v\x01\xa2id\x07\xa2op\xa8register\xa7service\xa1x\xa2ip\xa810.0.0.5\xa8metadata\x81\xa1k\xa1\xff"])
    show("body 70000", [b"", msgpack.packb({"v":1,"id":7,"op":"register","service":"x","ip":"10.0.0.5","port":8080,"metadata":{"k":"v"*70000}})])
    show("map 1025", [b"", msgpack.packb({"v":1,"id":7,"op":"register","service":"x","ip":"10.0.0.5","port":8080,"metadata":{"k%d"%i:"" for i in range(1025)}})])
    show("md value 1025", [b"", msgpack.packb({"v":1,"id":7,"op":"register","service":"x","ip":"10.0.0.5","port":8080,"metadata":{"k":"v"*1025}})])
    show("config_publish .", [b"", msgpack.packb({"v":1,"id":7,"op":"config_publish","data_id":"..","content":"x"})])
    show("request_id short", [b"", msgpack.packb({"v":1,"id":7,"op":"config_publish","data_id":"a","content":"x","request_id":"abc"})])
    show("17 routing frames", [b"r"*10]*16 + [b"", msgpack.packb({"v":1,"id":7,"op":"ping"})])
    show("15 routing frames", [b"r"*10]*15 + [b"", msgpack.packb({"v":1,"id":7,"op":"ping"})])
    show("routing frame 256", [b"r"*256, b"", msgpack.packb({"v":1,"id":7,"op":"ping"})])
    # oversized frame > 2228224 : connection dropped, no reply
    c.send_frames([b"", b"\x00"*2300000])
    try:
        print("huge frame reply", c.recv_frames(2))
    except d.Timeout as e:
        print("huge frame: no reply (as documented)")
    show("after huge frame ping", [b"", msgpack.packb({"v":1,"id":7,"op":"ping"})])
    show("config body 1.1MB", [b"", msgpack.packb({"v":1,"id":7,"op":"config_publish","data_id":"big","content":"x"*(1048577)})])
    show("config body 1.2MB", [b"", msgpack.packb({"v":1,"id":7,"op":"config_publish","data_id":"big","content":"x"*(1048576+70000)})])
finally:
    for x in nodes: x.stop()
