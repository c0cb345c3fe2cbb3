"""review24 F4: one crashed provider process (one session) holding most instances turns
self-preservation on: its dead instances are held, unhealthy, for up to 900 s.

README, The node: self-preservation is for when "the node assumes its own network failed,
not the providers"; "Most providers killed at once without deregistering look the same as
a network fault".  Here a single provider process -- one client session, the node knows
all 20 instances came from it and that session alone stopped renewing -- is SIGKILLed
while another provider keeps renewing.  That is one process crash, not a network fault
(the node hears the other session fine), yet 20 of 21 instances silent > 85% and >= 10,
so nothing is evicted: the 20 dead instances stay listed (unhealthy) until
``self_preservation_max``.  A gateway, a batch of worker threads or an agent-style
process registering many instances is common; with ``protect_threshold`` set, the held
dead instances count in the healthy share and push consumers into protection mode.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest
from helpers import NodeProcess, wait_until
from r24lib import FAST, addresses, req

from meshreg import Client

BIG = textwrap.dedent(
    """
    import signal, sys
    from meshreg import Client
    c = Client([sys.argv[1]], beat_interval=0.5)
    c.register_many([{"service": "gw", "ip": "10.20.0.1", "port": 8000 + i} for i in range(20)])
    print("registered", flush=True)
    while True:  # until the test's SIGKILL
        signal.pause()
    """
)


@pytest.mark.timeout(90)
def test_one_crashed_session_is_evicted_not_held(tmp_path) -> None:
    node = NodeProcess(*FAST, "--data-dir", str(tmp_path / "d"))  # unhealthy 3 s, evict 6 s
    big = other = None
    try:
        node.start()
        other = Client([node.address], beat_interval=0.5)
        other.register("gw", "10.20.0.2", 9000)
        big = subprocess.Popen(
            [sys.executable, "-c", BIG, node.address],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert big.stdout is not None and "registered" in big.stdout.readline()
        wait_until(lambda: len(addresses(node, "gw") or []) == 21, 10, 0.05, "21 listed")

        # both sessions renew a few times after the registrations (a live process)
        def renewals() -> int:
            r = req(node, "stats")
            return int(r["result"]["sessions"]["renewals"]) if r and r.get("ok") else 0

        base = renewals()
        wait_until(lambda: renewals() >= base + 6, 10, 0.05, "renewals after registering")
        big.send_signal(signal.SIGKILL)
        big.wait(5)
        t0 = time.monotonic()
        # evict_after is 6 s; allow twice that plus the sweep
        try:
            wait_until(lambda: addresses(node, "gw", healthy_only=False) == ["10.20.0.2:9000"],
                       15, 0.1, "the dead process's instances evicted")  # fmt: skip
        except AssertionError:
            pass
        left = addresses(node, "gw", healthy_only=False) or []
        sp = (req(node, "stats") or {}).get("result", {}).get("self_preservation", {})
        assert left == ["10.20.0.2:9000"], (
            f"{time.monotonic() - t0:.0f}s after one provider process (one session) was "
            f"killed, {len(left) - 1} of its instances are still listed (evict_after 6 s): "
            f"self-preservation state {sp.get('state')!r}, silent {sp.get('silent')} of "
            f"{sp.get('of')}, while the other session kept renewing"
        )
    finally:
        if big is not None and big.poll() is None:
            big.kill()
            big.wait(5)
        if other is not None:
            other.close(timeout=3)
        node.cleanup()
