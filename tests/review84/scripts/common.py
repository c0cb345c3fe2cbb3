import logging
import os
import sys
import time

sys.path.insert(0, "/work/main/tests")
from helpers import raw_request


def count(port, service="app", ns="public"):
    r = raw_request(
        port,
        {
            "v": 1,
            "id": 1,
            "op": "instances",
            "namespace": ns,
            "group": "DEFAULT_GROUP",
            "service": service,
        },
        3.0,
    )
    if not r["ok"]:
        return ("ERR", r["error"]["name"])
    return len(r["result"]["instances"])


def stats(port):
    return raw_request(port, {"v": 1, "id": 1, "op": "stats"}, 3.0)["result"]


def cfg(tmp, rate, extra=""):
    p = os.path.join(tmp, f"node-{rate}.toml")
    open(p, "w").write(f"[limits]\nwrite_rate_per_client = {rate}\n{extra}")
    return p


class LogCap(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, rec):
        self.lines.append((time.monotonic(), rec.levelname, rec.getMessage()))


def capture():
    h = LogCap()
    lg = logging.getLogger("meshreg")
    lg.addHandler(h)
    lg.setLevel(logging.INFO)
    return h
