import os
import subprocess
import tempfile
import time

from common import *

from meshreg import Client

tmp = tempfile.mkdtemp()
src = NodeProcess().start()
dst = NodeProcess("--config", cfg(tmp, 3)).start()
try:
    with Client(src.address, timeout=10) as c:
        for k in range(100):
            c.config_publish(f"cfg{k}", f"v{k}")
    z = os.path.join(tmp, "x.zip")
    r = subprocess.run(
        ["meshreg", "config", "export", "-s", src.address, "--out", z],
        capture_output=True,
        text=True,
    )
    print(r.returncode, r.stdout[-200:], r.stderr[-200:])
    t = time.monotonic()
    r = subprocess.run(
        ["meshreg", "config", "import", z, "-s", dst.address],
        capture_output=True,
        text=True,
        timeout=200,
    )
    print(f"import rc={r.returncode} in {time.monotonic() - t:.1f}s")
    print(r.stdout[-400:])
    print(r.stderr[:700])
    print(r.stderr[-700:])
    print("...", r.stderr.count("\n"), "stderr lines")
    with Client(dst.address, timeout=10) as c:
        print("dst holds", len(c.config_list()))
    print("throttled", stats(dst.port)["writes_throttled"])
finally:
    src.cleanup()
    dst.cleanup()
