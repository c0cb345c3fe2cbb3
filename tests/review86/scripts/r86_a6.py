import sys, time, json, re, subprocess, os
sys.path.insert(0, "/work/main/tests/review86")
import docclient as d
import msgpack, zmq
K = "/tmp/r86keys/"  # see REPORT.md, area 6: meshreg keygen cluster orders-app reader unknown, acl.toml
nodes = d.start_cluster(1, extra=["--key", K+"cluster.key", "--acl", K+"acl.toml"])
n = nodes[0]
cur = d.Curve.from_files(K+"orders-app.key", K+"cluster.pub")
try:
    print("ready", d.wait_ready(n.address, curve=cur))
    c = d.DocClient(n.address, curve=cur)
    print("register", c.register("orders", "10.0.0.5", 8080))
    print("read", [i["ip"] for i in c.instances("orders")["result"]["instances"]])
    print("register payments", c.register("payments", "10.0.0.5", 8080))
    print("stats", c.call("stats").get("error"))
    cl = c.cluster(); print("cluster counts", cl.get("counts"), [(m["services"], m["instances"]) for m in cl["members"]])
    print("digests on P", c.call("digests").get("error"))
    print("session_open", c.call("session_open")["ok"])
    print("config_publish (needs write on group *)", c.call("config_publish", data_id="a.txt", content="x").get("error"))
    print("config_get", c.call("config_get", data_id="a.txt").get("error"))
    # sub allowed and denied
    s = d.DocSub(d.notify_address(n.address), curve=cur)
    s.subscribe(d.service_topic("orders")); s.subscribe(d.service_topic("payments")); s.subscribe(b"")
    got = []
    t0 = time.time()
    while time.time()-t0 < 1.5:
        m = s.recv(0.3)
        if m: got.append((m[0], m[2]["kind"]))
    print("subs got", got)
    st = subprocess.run(["meshreg","stats","-s",n.address,"--key",K+"cluster.key","--server-key",K+"cluster.pub"],capture_output=True,text=True)
    print("stats w/ cluster key rc", st.returncode, [l for l in st.stdout.splitlines() if "refused" in l or "denied" in l.lower() or "security" in l][:10], st.stderr[:300])
    # unknown key
    bad = d.DocClient(n.address, curve=d.Curve.from_files(K+"unknown.key", K+"cluster.pub"))
    try: print("unknown key", bad.call("ping", timeout=1.5))
    except d.Timeout as e: print("unknown key: no reply", e)
    plain = d.DocClient(n.address)
    try: print("no curve", plain.call("ping", timeout=1.5))
    except d.Timeout as e: print("no curve: no reply")
    # reader key: ACL on team/orders read only
    rd = d.DocClient(n.address, curve=d.Curve.from_files(K+"reader.key", K+"cluster.pub"))
    print("reader ping", rd.call("ping")["ok"])
    print("reader read public/orders", rd.instances("orders").get("error"))
    print("reader read team/orders", rd.instances("orders", namespace="team").get("ok"))
    print("reader register team/orders", rd.register("orders", "10.0.0.5", 8080, namespace="team").get("error"))
    print("reader services team", rd.call("services", namespace="team"))
    print("reader namespaces", rd.call("namespaces"))
    # wrong server key
    wrong = d.DocClient(n.address, curve=d.Curve(d.read_cert(K+"unknown.pub")["public-key"], cur.public, cur.secret))
    try: print("wrong server key", wrong.call("ping", timeout=1.5))
    except d.Timeout: print("wrong server key: no reply")
    print("stats.security via cluster key:")
    ck = d.read_cert(K+"cluster.key")
    adm = d.DocClient(n.address, curve=d.Curve(ck["public-key"], ck["public-key"], ck["secret-key"]))
    stt = adm.ok("stats"); print(" security", stt.get("security"), "handshakes_refused", stt.get("handshakes_refused"), "subscriptions_refused", stt.get("subscriptions_refused"), "permission_denied", stt.get("permission_denied"))
finally:
    for x in nodes: x.stop()
