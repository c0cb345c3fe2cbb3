"""review47 F1: after every node of the cluster was frozen (SIGSTOP; a VM host or storage
pause) for longer than evict_after, some nodes come back; a live provider whose client
sits on a node that is still frozen sends nothing for its whole backoff pause (0.5 s
doubling to 30 s, client/session.py BACKOFF_BASE/BACKOFF_MAX), then moves to the *next*
server of its list whether or not that one is back, and waits there for twice as long.
Meanwhile the nodes that are back answer reads: they mark its instances unhealthy, a
majority of them evicts them, and consumers drop them, although the provider ran all
along and lists the live nodes among its servers.

The client's failover (``Session._failover``) is round robin over its list, and while
offline it keeps one ping in flight to the current server only ("a node that comes back
is heard at once on the current connection, or at the next switch"): a node that comes
back while the client waits on another is not heard until the rotation reaches it.

Steps (both tests): nodes with check 0.2 s, unhealthy 3 s, evict 6 s, peer timeout 1 s; a
provider whose ``Client`` lists every node (``server_order="listed"``) registers 3
instances (a session, renewed every 1 s); one consumer per node, pinned to it.  Once the
table is 15 s old (consumers trust its lists), SIGSTOP every node for 12 s, then until the
provider's client switches server (``Client.server`` changes: it starts a fresh pause of
8-16 s); at once SIGCONT the nodes that are neither its current server nor the next one
of its list.  Watch the nodes that are back for 10 s.

Expected (an operator of Nacos/Consul/Eureka): a provider that is alive and lists live
servers keeps its instances registered and healthy: Eureka and Nacos 1 send each beat to
the next server in the list, Nacos 2's gRPC client reconnects to the next server at once;
none of them waits 8-30 s on a server that does not answer while another does.

Seen (runs of 05:19-05:23 UTC, /work/notes/review47.md): three nodes, one back: the
provider's instances unhealthy on it from 4.07 s to 16.97 s after its return, the
consumer on it dropped them for as long.  Five nodes, three back (a majority): unhealthy
from 3.09 s, evicted on all three (``evicted 10.47.1.3:80, 10.47.1.2:80, 10.47.1.1:80``)
from 6.14 s to 18.93 s, the consumers' lists empty for as long.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from r47lib import Consumer, Node, Provider, Truth, new_nodes, running, wait_until  # noqa: E402

SVC = "frozen47"
STOP = 12.0  # every node frozen at least this long (> evict_after, 6 s)
WATCH = 10.0  # the nodes back are judged this long (before the fix: unhealthy at 4 s, evicted 7 s)
TABLE_AGE = 16.0  # consumers trust a table older than 15 s (README, push-empty protection)


def _await_switch(client: object, bound: float = 40.0) -> None:
    """Until ``client.server`` changes (the client starts a fresh pause), at most
    ``bound`` s: a client that no longer switches this way goes on at once."""
    before = client.server  # type: ignore[attr-defined]
    end = time.monotonic() + bound
    while time.monotonic() < end and client.server == before:  # type: ignore[attr-defined]
        time.sleep(0.01)


def _freeze_and_bring_back(
    nodes: list[Node], prov: Provider, how_many: int
) -> tuple[str, list[Node]]:
    """SIGSTOP all; after STOP s, wait for the provider's client to switch server; SIGCONT
    ``how_many`` nodes that are neither its current server nor the next of its list."""
    for n in nodes:
        n.signal(signal.SIGSTOP)
    time.sleep(STOP)  # the fault's own length
    _await_switch(prov.client)
    on = prov.client.server
    i = [n.address for n in nodes].index(on)
    live = [nodes[(i + 2 + k) % len(nodes)] for k in range(how_many)]
    for n in live:
        n.signal(signal.SIGCONT)
    return on, live


def _run(tmp_path: Path, n_nodes: int, n_back: int) -> None:
    with running(new_nodes(n_nodes, str(tmp_path))) as nodes:
        t_up = time.monotonic()
        truth = Truth()
        prov = Provider("p", [n.address for n in nodes], truth)
        consumers: dict[str, Consumer] = {}
        live: list[Node] = []
        try:
            for j in (1, 2, 3):
                prov.register(SVC, f"10.47.1.{j}", 80)
            want = {f"10.47.1.{j}:80" for j in (1, 2, 3)}
            for n in nodes:
                consumers[n.address] = Consumer([n.address], [SVC])
            wait_until(lambda: all(set(n.listing(SVC) or {}) == want for n in nodes)
                       and all(c.view(SVC) == want for c in consumers.values()), 15, 0.1,
                       "every node and consumer list 3")  # fmt: skip
            wait_until(lambda: time.monotonic() - t_up >= TABLE_AGE, 30, 0.2, "table 15 s old")

            on, live = _freeze_and_bring_back(nodes, prov, n_back)
            t_back = time.monotonic()
            bad: list[tuple[float, str, dict[str, bool] | None]] = []
            answered = {n.address: 0 for n in live}
            cons_bad: list[float] = []
            while time.monotonic() - t_back < WATCH:  # bounded: WATCH s of samples
                for n in live:
                    got = n.listing(SVC, 0.5)
                    if got is None:
                        continue  # resyncing (UNAVAILABLE): not an answer
                    answered[n.address] += 1
                    if set(got) != want or not all(got.values()):
                        bad.append((round(time.monotonic() - t_back, 2), n.address, got))
                    v = consumers[n.address].view(SVC)
                    if v is not None and v != want:
                        cons_bad.append(round(time.monotonic() - t_back, 2))
                time.sleep(0.2)
            assert all(answered.values()), f"a node that is back answered no read: {answered}"
            missing = [b for b in bad if b[2] is not None and set(b[2]) != want]
            msgs = []
            if bad:
                msgs.append(
                    f"{len(bad)} answers listed the live provider's instances unhealthy or "
                    f"missing, from {bad[0][0]} s to {bad[-1][0]} s after the return; first "
                    f"{bad[0][1:]}"
                )
            if missing:
                msgs.append(f"missing (evicted) from {missing[0][0]} s to {missing[-1][0]} s")
            if cons_bad:
                msgs.append(
                    f"consumers on those nodes lacked them from {cons_bad[0]} s to {cons_bad[-1]} s"
                )
            assert not msgs, (
                f"the provider's client sat on frozen {on} (then the next frozen one) while "
                f"{[n.address for n in live]} answered: " + "; ".join(msgs)
            )
        finally:
            for n in nodes:
                if n not in live:
                    n.signal(signal.SIGCONT)
            prov.close()
            for c in consumers.values():
                c.close()


@pytest.mark.timeout(180)
def test_one_node_back_keeps_the_live_provider_healthy(tmp_path: Path) -> None:
    _run(tmp_path, 3, 1)


@pytest.mark.timeout(200)
def test_majority_back_does_not_evict_the_live_provider(tmp_path: Path) -> None:
    _run(tmp_path, 5, 3)


@pytest.mark.timeout(180)
def test_consumer_hears_a_change_on_the_node_that_is_back(tmp_path: Path) -> None:
    """The consumer's side of F1: a consumer whose ``Client`` lists every node sits on a
    frozen one for its backoff pause, then on the next frozen one, while the node that is
    back takes a new registration: the consumer's list lacks it (and would keep a removed
    one) for the rest of the pauses.  Three nodes, a provider registers 3 instances, the
    consumer subscribes; freeze all for 12 s, then until the consumer's client switches;
    SIGCONT the one node that is neither its current server nor the next; a new provider
    ``Client([that node])`` registers a fourth instance there.  Expected: the consumer
    lists it within 5 s (Nacos: the next query or push from the next server, ~1 beat)."""
    with running(new_nodes(3, str(tmp_path))) as nodes:
        t_up = time.monotonic()
        truth = Truth()
        prov = Provider("p", [n.address for n in nodes], truth)
        late: Provider | None = None
        cons = None
        live: list[Node] = []
        try:
            for j in range(3):
                prov.register(SVC, f"10.47.2.{j}", 80)
            want = {f"10.47.2.{j}:80" for j in range(3)}
            cons = Consumer([n.address for n in nodes], [SVC])
            wait_until(lambda: cons.view(SVC) == want, 15, 0.1, "the consumer lists 3")
            wait_until(lambda: time.monotonic() - t_up >= TABLE_AGE, 30, 0.2, "table 15 s old")
            for n in nodes:
                n.signal(signal.SIGSTOP)
            time.sleep(STOP)  # the fault's own length
            _await_switch(cons.client)
            on = cons.client.server
            i = [n.address for n in nodes].index(on)
            back = nodes[(i + 2) % 3]
            live = [back]
            back.signal(signal.SIGCONT)
            t_back = time.monotonic()
            wait_until(lambda: back.listing(SVC, 0.5) is not None, 10, 0.1, "the node answers")
            late = Provider("late", [back.address], truth)
            late.register(SVC, "10.47.2.9", 80)
            t_reg = time.monotonic()
            deadline = t_reg + 5.0
            while time.monotonic() < deadline and "10.47.2.9:80" not in (cons.view(SVC) or ()):
                time.sleep(0.1)
            seen = cons.view(SVC)
            on_node = back.listing(SVC, 0.5)
            assert "10.47.2.9:80" in (seen or ()), (
                f"{round(time.monotonic() - t_reg, 1)} s after {back.address} (back "
                f"{round(t_reg - t_back, 1)} s) registered 10.47.2.9:80 (it lists "
                f"{sorted(on_node or ())}), the consumer, on frozen {cons.client.server}, "
                f"still lists {sorted(seen or ())}"
            )
        finally:
            for n in nodes:
                if n not in live:
                    n.signal(signal.SIGCONT)
            for p in (prov, late):
                if p is not None:
                    p.close()
            if cons is not None:
                cons.close()
