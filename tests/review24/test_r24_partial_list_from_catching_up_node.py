"""review24 F15: a consumer applies a *partial* list from its server while that server is
still catching up after a restart: live instances vanish from the consumer.

README, Consumers, push-empty protection: "A list from a node that restarted less than
15 s ago that drops instances the consumer sees, empty or partial, is not trusted at all
... so neither a node's restart nor a whole-cluster restart blinds consumers."  The
client's guard (client/session.py ``_pulled``) only distrusts a young node's answer while
this client has taken *no* answer from that incarnation yet (``snap.epoch !=
self.epochs.get(source)``); but a node catches up service by service, so once any answer
of the new incarnation was taken (here: a read of a service it does hold, or of an empty
one), every later partial answer from it is trusted while it is still catching up.

Scenario (a rolling restart meeting a node failure, with providers registering): B dies
(SIGKILL), A (the consumer's server) is restarted.  A catches up from C, which does not
list B's services until it has seen B down (``peer_timeout``); a new registration of one
of B's services, applied at C, reaches A as a delta, so A lists only the new instance.
The consumer reads one service from A (taken: it drops nothing), then gets that partial
list for B's services and applies it: the two live instances are gone from its view.
(Seen first in a churn run: 79 bad callbacks over 27 services, 0.1-0.2 s each.)
"""

from __future__ import annotations

import time

import pytest
from helpers import service_owned_by, wait_until
from r24lib import addresses, all_up, cluster

from meshreg import Client

LIVE = {"10.22.0.1:80", "10.22.0.2:80"}


@pytest.mark.timeout(120)
def test_a_catching_up_server_never_shrinks_a_consumers_list(tmp_path) -> None:
    timings = ("--check-interval", "0.2", "--unhealthy-after", "3", "--evict-after", "6",
               "--peer-timeout", "3")  # fmt: skip
    nodes = cluster(3, str(tmp_path), timings)
    a, b, c = nodes
    members = [n.address for n in nodes]
    prov = cons = None
    try:
        wait_until(lambda: all_up(nodes), 20, 0.1, "3 members up")
        # services B is responsible for (among A, B, C, and so among B, C too)
        svcs = []
        for i in range(5):
            svcs.append(service_owned_by(b.address, members, f"b{i}x"))
        prov = Client([c.address], beat_interval=0.5)
        for s in svcs:
            prov.register(s, "10.22.0.1", 80)
            prov.register(s, "10.22.0.2", 80)
        wait_until(lambda: all(set(addresses(n, s) or []) == LIVE for n in nodes for s in svcs),
                   10, 0.05, "listed everywhere")  # fmt: skip
        cons = Client(members, server_order="listed")
        assert cons.server == a.address
        views: dict[str, list[set[str]]] = {s: [] for s in svcs}
        for s in svcs:
            cons.subscribe(s, lambda xs, s=s: views[s].append({i.address for i in xs}))
        wait_until(lambda: all(v and v[-1] == LIVE for v in views.values()), 10, 0.02)

        worst: dict[str, set[str]] = {}
        for trial in range(3):  # the window is 0.1-0.5 s long: a few tries
            if trial:  # B back first (a second restart may be held as a crash loop)
                b.start()
                try:
                    wait_until(lambda: all_up(nodes), 20, 0.1, "3 members up again")
                except AssertionError:
                    break
                if cons.server != a.address:
                    break
            b.kill()  # a node failure ...
            assert a.stop() == 0  # ... during a rolling restart of A
            a.start()
            cons.instances(f"probe-{trial}")  # one answer of A's new incarnation taken
            for k, s in enumerate(svcs):  # providers keep registering meanwhile
                prov.register(s, f"10.22.1.{trial + 1}", 81 + k)
            t0 = time.monotonic()
            while time.monotonic() - t0 < 2.0:  # A repairs B's services within ~0.5 s
                for s in svcs:
                    seen = {i.address for i in cons.instances(s)}
                    if not seen >= LIVE and s not in worst:
                        worst[s] = seen
                time.sleep(0.02)
            for s in svcs:
                for v in views[s]:
                    if not v >= LIVE and s not in worst:
                        worst[s] = v
            if worst:
                break
        assert not worst, (
            f"live instances {sorted(LIVE)} (their provider never stopped) vanished from the "
            f"consumer's view of {len(worst)} of {len(svcs)} services while its server "
            f"{a.address} was catching up after a restart; e.g. "
            f"{next(iter(worst.items()))} (README: a young node's partial list 'is not "
            "trusted at all')"
        )
    finally:
        for cl in (cons, prov):
            if cl is not None:
                cl.close(timeout=3)
        for n in nodes:
            n.cleanup()
