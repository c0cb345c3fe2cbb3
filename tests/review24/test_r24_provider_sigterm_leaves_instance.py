"""review24 F2: a Python provider stopped with SIGTERM (systemd's and Kubernetes' stop
signal) leaves its instance listed healthy for unhealthy_after (15 s by default).

README quick start: ``with Client(...) as c: c.register(...)`` ... "leaving the block
deregisters what this client registered"; `close()` "deregisters what it registered".
Python's default SIGTERM action ends the process without unwinding the ``with`` block,
and the client installs no handler (nor atexit hook), so the session is not closed: the
instance stays healthy on every node until its session expires (15 s), and consumers keep
being sent to a process that is gone.  The `meshreg register` sidecar does handle SIGTERM
(deregisters at once).  Nacos 2 ties ephemeral instances to the client's connection (gone
when the process dies, whatever the signal); Spring/Nacos deregister from a JVM shutdown
hook, which SIGTERM runs.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest
from helpers import NodeProcess, wait_until
from r24lib import addresses

PROVIDER = textwrap.dedent(
    """
    import signal, sys
    from meshreg import Client
    with Client([sys.argv[1]]) as c:
        c.register("app", "10.3.0.1", 8080)
        print("registered", flush=True)
        while True:  # until the test's SIGTERM
            signal.pause()
    """
)


@pytest.mark.timeout(90)
def test_sigterm_of_a_python_provider_deregisters_its_instance(tmp_path) -> None:
    node = NodeProcess("--data-dir", str(tmp_path / "d"))  # default timings: 5/15/30 s
    prov = None
    try:
        node.start()
        prov = subprocess.Popen(
            [sys.executable, "-c", PROVIDER, node.address],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert prov.stdout is not None
        assert "registered" in prov.stdout.readline()
        wait_until(lambda: addresses(node, "app") == ["10.3.0.1:8080"], 10, 0.05, "listed")
        prov.send_signal(signal.SIGTERM)
        prov.wait(10)
        t0 = time.monotonic()
        try:
            wait_until(lambda: addresses(node, "app") == [], 3.0, 0.05, "instance gone")
        except AssertionError:
            pass
        left = addresses(node, "app")
        assert left == [], (
            f"{time.monotonic() - t0:.1f}s after the provider process exited on SIGTERM "
            f"(rc {prov.returncode}), its instance is still listed healthy: {left} "
            "(no SIGTERM handler / atexit close in the client; gone only after "
            "unhealthy_after, 15 s)"
        )
    finally:
        if prov is not None and prov.poll() is None:
            prov.kill()
            prov.wait(5)
        node.cleanup()
