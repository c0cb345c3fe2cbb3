# ruff: noqa: E402, E731, SIM115, UP031
"""review41 workload for one client version (a script run with that version on
PYTHONPATH). argv: tag servers(csv) outdir.
Runs until outdir/STOP exists. Writes JSONL events to outdir/<tag>.jsonl"""

import inspect
import json
import os
import sys
import threading
import time

from meshreg import Client as _C

_kw = (
    {"handle_sigterm": False}
    if "handle_sigterm" in inspect.signature(_C.__init__).parameters
    else {}
)


def Client(*a, **k):
    k.pop("handle_sigterm", None)
    return _C(*a, **k, **_kw)


import meshreg

tag, servers, outdir = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
os.makedirs(outdir, exist_ok=True)
out = open(os.path.join(outdir, f"{tag}.jsonl"), "a", buffering=1)
lock = threading.Lock()


def ev(kind, **kw):
    with lock:
        out.write(json.dumps({"t": time.time(), "k": kind, **kw}) + "\n")


ev("start", file=meshreg.__file__)
stop = lambda: os.path.exists(os.path.join(outdir, "STOP"))
ns = "public"
# providers
prov_s = Client(servers, sessions=True, beat_interval=1.0, handle_sigterm=False)
prov_b = Client(servers, sessions=False, beat_interval=1.0, handle_sigterm=False)
svc_s, svc_b = f"orders-{tag}", f"pay-{tag}"
for i in range(5):
    prov_s.register(svc_s, "10.1.0.%d" % (i + 1), 8080)
for i in range(3):
    prov_b.register(svc_b, "10.2.0.%d" % (i + 1), 9090)
ev("registered")
cons = Client(servers, cache_dir=os.path.join(outdir, f"cache-{tag}"), handle_sigterm=False)


def cb(name, want):
    def f(xs):
        ev("cb", svc=name, n=len(xs), healthy=sum(1 for x in xs if x.healthy), want=want)

    return f


cons.subscribe(svc_s, cb(svc_s, 5))
cons.subscribe(svc_b, cb(svc_b, 3))
# config
cw = Client(servers, handle_sigterm=False)
did, cas, gray = f"app-{tag}.txt", f"cas-{tag}.txt", f"gray-{tag}.txt"
info = cw.config_publish(did, "v0")
ev("ack", data_id=did, rev=info.revision, content="v0")
try:
    info = cw.config_publish(cas, "0", if_revision=0)
except Exception:
    info = cw.config_get(cas)
cas_rev = info.revision
ev("ack", data_id=cas, rev=cas_rev, content=info.content)
g = cw.config_publish(gray, "main0")
ev("ack", data_id=gray, rev=g.revision, content="main0")
g = cw.config_gray(gray, "gray0", labels={"env": "canary"})
ev("gray", data_id=gray, rev=g.revision)
lis = Client(servers, handle_sigterm=False)
lis.config_listen(
    did, lambda content, revision: ev("listen", data_id=did, rev=revision, content=content)
)
rd = Client(servers, handle_sigterm=False)
n = 0
last_read = 0
while not stop():
    n += 1
    t0 = time.time()
    try:
        info = cw.config_publish(did, f"v{n}")
        ev("ack", data_id=did, rev=info.revision, content=f"v{n}", dt=time.time() - t0)
    except Exception as e:
        ev("werr", data_id=did, err=f"{type(e).__name__}: {e}"[:300], dt=time.time() - t0)
    try:
        cur = cw.config_get(cas)
        i2 = cw.config_publish(cas, str(int(cur.content) + 1), if_revision=cur.revision)
        ev("ack", data_id=cas, rev=i2.revision, content=i2.content)
    except Exception as e:
        ev("werr", data_id=cas, err=f"{type(e).__name__}: {e}"[:300])
    try:
        r = rd.config_get(did)
        if r.revision < last_read:
            ev("backwards", data_id=did, rev=r.revision, prev=last_read)
        last_read = max(last_read, r.revision)
        ev("read", data_id=did, rev=r.revision)
    except Exception as e:
        ev("rerr", err=f"{type(e).__name__}: {e}"[:300])
    try:
        xs = rd.instances(svc_s)
        if len(xs) != 5:
            ev("short", svc=svc_s, n=len(xs))
    except Exception as e:
        ev("rerr", err=f"{type(e).__name__}: {e}"[:300])
    if n % 20 == 0:
        try:
            g = cw.config_gray(gray, f"gray{n}", labels={"env": "canary"})
            ev("gray", data_id=gray, rev=g.revision)
        except Exception as e:
            ev("werr", data_id=gray, err=f"{type(e).__name__}: {e}"[:300])
    time.sleep(0.25)
ev("stopping")
for c in (lis, rd, cw, cons, prov_s, prov_b):
    try:
        c.close()
    except Exception as e:
        ev("closeerr", err=str(e))
ev("done")
