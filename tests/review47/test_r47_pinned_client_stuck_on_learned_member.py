"""review47 F2: a client given ONE server (a sidecar talking to its local node) learns the
other members when it registers and falls back on them when its server stops answering
(README "Servers learned from the cluster").  After every node was frozen, its own
server comes back and answers, but the client sits on a learned member that is still
frozen, for its backoff pause: its writes fail with ``ServerUnreachableError`` "no
connection to them completed its handshake, so the request never left this client (not
applied)", naming only the frozen learned member, and its session renewals reach nobody,
so its own node marks its instances unhealthy.

Steps: 3 nodes (check 0.2 s, unhealthy 3 s, evict 6 s, peer timeout 1 s); a provider
``Client([n1])`` registers 2 instances.  SIGSTOP every node for 12 s, then until the
client's current server is a learned member (not n1) just after a switch (it starts a
fresh 8-16 s pause); SIGCONT n1 only.  Once n1 answers reads: ``deregister`` one
instance (default timeout 3 s), and watch n1 list the other one for 10 s.

Expected (Nacos/Consul agents, Eureka): a client whose configured server answers talks
to it; the deregistration succeeds at the first or second attempt, and the remaining
instance stays healthy on the provider's own node.

Seen (05:36 UTC, /work/notes/review47.md): two ``deregister`` calls failed after 3.0 s
each (naming the frozen learned member 127.0.0.1:13060), the third succeeded 1.99 s
later, ~8 s after n1 came back.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from r47lib import Node, Provider, Truth, new_nodes, running, wait_until  # noqa: E402

from meshreg.errors import ServerUnreachableError  # noqa: E402

SVC = "pinned47"
STOP = 12.0


@pytest.mark.timeout(150)
def test_client_uses_its_own_server_once_it_is_back(tmp_path: Path) -> None:
    with running(new_nodes(3, str(tmp_path))) as nodes:
        n1 = nodes[0]
        prov = Provider("p", [n1.address], Truth())
        frozen: list[Node] = []
        try:
            prov.register(SVC, "10.47.5.1", 80)
            prov.register(SVC, "10.47.5.2", 80)
            wait_until(lambda: all(len(n.listing(SVC) or {}) == 2 for n in nodes), 15, 0.1,
                       "every node lists 2")  # fmt: skip
            for n in nodes:
                n.signal(signal.SIGSTOP)
            frozen = list(nodes)
            time.sleep(STOP)  # the fault's own length

            # until a switch lands on a learned member (bounded: a client that no longer
            # switches this way goes on at once)
            end = time.monotonic() + 90
            while time.monotonic() < end:
                before = prov.client.server
                while time.monotonic() < end and prov.client.server == before:
                    time.sleep(0.01)
                if prov.client.server != n1.address:
                    break
            on = prov.client.server
            n1.signal(signal.SIGCONT)
            frozen.remove(n1)
            t_back = time.monotonic()
            wait_until(lambda: n1.listing(SVC, 0.5) is not None, 10, 0.1, "n1 answers reads")

            errors: list[str] = []
            t0 = time.monotonic()
            try:
                prov.client.deregister(SVC, "10.47.5.1", 80)
            except ServerUnreachableError as exc:
                errors.append(f"{round(time.monotonic() - t0, 1)} s: {str(exc)[:200]}")
            bad: list[tuple[float, dict[str, bool] | None]] = []
            while time.monotonic() - t_back < 12.0:  # bounded: 12 s after the return
                got = n1.listing(SVC, 0.5)
                if got is not None and got.get("10.47.5.2:80") is not True:
                    bad.append((round(time.monotonic() - t_back, 2), got))
                time.sleep(0.2)
            msgs = []
            if errors:
                msgs.append(f"deregister failed while n1 answered: {errors[0]}")
            if bad:
                msgs.append(
                    f"n1 listed the live provider's remaining instance unhealthy or missing "
                    f"from {bad[0][0]} s to {bad[-1][0]} s after its return ({bad[0][1]})"
                )
            assert not msgs, (
                f"client given only {n1.address} sat on learned member {on} (frozen) while "
                f"{n1.address} was back: " + "; ".join(msgs)
            )
        finally:
            for n in frozen:
                n.signal(signal.SIGCONT)
            prov.close()
