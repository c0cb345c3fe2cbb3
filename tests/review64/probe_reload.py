"""Probe: onboarding a tenant (ACL reload adding team-X) while team-b watches a service
and listens to a config: does team-b miss a change?  Bounded: 40 changes."""
from probe_common import *
import signal, threading, sys
from meshreg import Client
cb = Client([f"127.0.0.1:{p}" for p in PORTS], key=W+"/team-b.key", server_key=W+"/cluster.pub", namespace="team-b")
w = Client([f"127.0.0.1:{p}" for p in PORTS], key=W+"/team-b.key", server_key=W+"/cluster.pub", namespace="team-b")
seen, cfg = set(), []
cb.subscribe("reload-watched", lambda xs: seen.update(x.port for x in xs))
cb.config_listen("reload.cfg", lambda content, rev: cfg.append(content))
time.sleep(0.5)
acl = open(W + "/acl.toml").read()
import subprocess
if not os.path.exists(W + "/team-" + sys.argv[1] + ".pub"):
    subprocess.run(["meshreg", "keygen", "team-" + sys.argv[1] + ""], cwd=W, check=True, capture_output=True)
open(W + "/acl.toml", "a").write('\n[[client]]\nname = "team-" + sys.argv[1] + ""\nkey_file = "team-" + sys.argv[1] + ".pub"\nallow = [{ namespace = "team-" + sys.argv[1] + "", access = "admin" }]\n')
t0 = time.monotonic()
for i in range(40):
    if i == 10:
        for f in ("node13049.pid", "node19685.pid", "node14933.pid"):
            os.kill(int(open(W + "/" + f).read()), signal.SIGHUP)
    w.register("reload-watched", "10.4.0.1", 2000 + i)
    w.config_publish("reload.cfg", f"v{i}")
    time.sleep(0.05)
deadline = time.monotonic() + 15
while time.monotonic() < deadline and (len(seen) < 40 or not cfg or cfg[-1] != "v39"):
    time.sleep(0.1)
print("watch saw %d of 40 ports after %.1fs; config last %r (%d callbacks)" % (len(seen), time.monotonic()-t0, cfg[-1] if cfg else None, len(cfg)))
missing = sorted(set(range(2000, 2040)) - seen); print("missing", missing[:10])
for i in range(40): w.deregister("reload-watched", "10.4.0.1", 2000 + i)
cb.close(); w.close()
