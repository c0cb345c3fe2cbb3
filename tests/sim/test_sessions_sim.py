"""Client sessions under the registry's fault schedules (issue 13), on the simulated network.

A ``SessionClient`` plays ``meshreg.client`` in its default mode: it opens a
session, registers its instances in it (retrying until each gets a reply),
and renews the session every 5 s through its *server* (sticky, as the real
client is: a timeout moves it to another live node at once and the renewal
is sent again).  When a renewal says the node holds fewer instances than
were acknowledged, twice in a row, or does not know the session, it
registers them all again.  A client may be killed (it just stops: no close)
or close its session.

The faults hit the node the client renews through: it is killed, paused
(longer than ``unhealthy_after``) or cut off in a partition.  The invariants
are ``test_distro_sim``'s (same tables everywhere, every live instance listed
and healthy on every live node at the end, every dead one gone, quiet), plus,
for the kill and the pause, that no live instance is ever missing or
unhealthy on a node that is not faulted; and that a killed client's
instances, once gone everywhere, never come back.

Replay a failing seed with ``MESHREG_SIM_TRACE=/tmp/t.txt pytest
tests/sim/test_sessions_sim.py -k '<test> and <seed>'``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

import pytest

from meshreg.core.distro import DistroNode
from meshreg.errors import ErrorCode
from meshreg.model import InstanceId, ServiceKey

sys.path.insert(0, os.path.dirname(__file__))

from network import Network, Outcome  # noqa: E402
from test_distro_sim import (  # noqa: E402
    SETTLE,
    Probe,
    check_invariants,
    core_of,
    lookup,
    run_settled,
    scenario_message,
    set_groups,
    start_cluster,
    watch_no_resurrection,
)

RENEW_INTERVAL = 5.0  # s, the client's beat interval


@dataclass
class SessionInstance:
    """One instance of a session client, shaped like test_distro_sim's Provider for the
    invariant checks (key, iid, name, keeps_beating, stop_at, stopped, unexpected)."""

    key: ServiceKey
    iid: InstanceId
    name: str
    keeps_beating: bool
    stop_at: float | None
    stopped: bool = False
    unexpected: list[str] = field(default_factory=list)


class SessionClient:
    def __init__(
        self,
        net: Network,
        name: str,
        services: int,
        per_service: int,
        start: float,
        stop_at: float | None = None,
        close: bool = False,
        sticky: bool = True,
    ) -> None:
        self.net = net
        self.name = name
        self.sid = f"{net.rng.getrandbits(128):032x}"
        self.sticky = sticky
        self.entry: str | None = None
        self.timed_out: str | None = None  # the node that last timed out: not chosen next
        self.active = False
        self.close = close
        self.acked: set[int] = set()
        self.short = 0
        self.redos = 0
        self.instances: list[SessionInstance] = []
        self.fields: list[dict[str, Any]] = []
        for s in range(services):
            for _ in range(per_service):
                index = next(net.instance_ids)
                key = ServiceKey("public", "DEFAULT_GROUP", f"svc{s}")
                iid = InstanceId(f"10.2.{index // 200}.{index % 200 + 1}", 9000 + index, "DEFAULT")
                self.instances.append(
                    SessionInstance(
                        key, iid, f"{name}:{key.service}/{iid.ip}", stop_at is None, stop_at
                    )
                )
                self.fields.append(
                    {
                        "namespace": "public",
                        "group": "DEFAULT_GROUP",
                        "service": key.service,
                        "ip": iid.ip,
                        "port": iid.port,
                        "metadata": {"c": name},
                        "session": self.sid,
                    }
                )
        net.at(start, self._start)
        if stop_at is not None:
            net.at(stop_at, self._stop)

    def send(self, op: str, fields: dict[str, Any], on_done: Any) -> None:
        net = self.net
        live = net.live()
        if not live:
            net.after(1.0, on_done, ("timeout", None))
            return
        node = net.nodes.get(self.entry) if self.entry is not None else None
        if not self.sticky or node is None or node.core is None:
            # as the real client: after a timeout, another node (not the one that timed out)
            node = net.rng.choice([n for n in live if n.node_id != self.timed_out] or live)
            self.entry = node.node_id
        net.client_request(node, op, next(net.req_ids), fields, on_done)

    def _start(self) -> None:
        self.active = True
        self.net.log(f"session client {self.name} starts ({self.sid[:8]})")
        self.send("session_open", {"session": self.sid}, lambda outcome: None)
        for i in range(len(self.fields)):
            self._register(i)
        self.net.after(RENEW_INTERVAL, self._renew)

    def _register(self, i: int) -> None:
        def done(outcome: Outcome) -> None:
            kind, value = outcome
            if kind == "ok":
                self.acked.add(i)
            elif kind == "error":
                self.instances[i].unexpected.append(f"register: {value!r} at {self.net.now:.3f}")
            elif self.active:  # timeout: the server is gone; another one, now
                self.timed_out, self.entry = self.entry, None
                self.net.after(0.5, self._register, i)

        if self.active:
            self.send("register", self.fields[i], done)

    def _renew(self, again: bool = False) -> None:
        if not self.active:
            return

        def done(outcome: Outcome) -> None:
            kind, value = outcome
            if kind == "timeout":
                self.timed_out, self.entry = self.entry, None  # fail over, renew there at once
                self.net.count("session_renew_timeout")
                if not again:
                    self._renew(again=True)
                return
            if kind == "error":
                self.instances[0].unexpected.append(f"renew: {value!r} at {self.net.now:.3f}")
                return
            held, acked = value["instances"], len(self.acked)
            if value.get("known") is False and acked:
                self.short = 2
            self.short = self.short + 1 if held < acked else 0
            if self.short >= 2:
                self.short = 0
                self.redos += 1
                self.net.count("session_redo")
                self.net.log(f"session client {self.name}: node holds {held} of {acked}: redo")
                for i in range(len(self.fields)):
                    self._register(i)

        self.send("session_renew", {"session": self.sid}, done)
        if not again:
            self.net.after(RENEW_INTERVAL, self._renew)

    def _stop(self) -> None:
        self.active = False
        for inst in self.instances:
            inst.stopped = True
        self.net.log(f"session client {self.name} stops" + (" (closes)" if self.close else ""))
        if self.close:
            self._close(3)

    def _close(self, tries: int) -> None:
        def done(outcome: Outcome) -> None:
            if outcome[0] == "error":
                self.instances[0].unexpected.append(f"close: {outcome[1]!r}")
            elif outcome[0] == "timeout" and tries > 1:
                self.timed_out, self.entry = self.entry, None
                self._close(tries - 1)

        self.send("session_close", {"session": self.sid}, done)


def all_instances(clients: list[SessionClient]) -> list[SessionInstance]:
    return [inst for c in clients for inst in c.instances]


def watch_live(
    net: Network, clients: list[SessionClient], probe: Probe, start: float, exempt: set[str]
) -> None:
    """From ``start`` on: every live client's instances listed and healthy on every node
    not in ``exempt`` (read at the time of the check: the faulted node)."""

    def check() -> None:
        for node in net.live():
            if node.node_id in exempt or node.core is None or net.is_paused(node.node_id):
                continue
            for c in clients:
                if not c.active:
                    continue
                for inst in c.instances:
                    rec = lookup(node.core, inst)  # type: ignore[arg-type]
                    if rec is None or not rec.healthy:
                        what = "unhealthy" if rec is not None else "missing"
                        probe.fail(f"live {inst.name} {what} on {node.node_id}")

    net.every(0.25, check, start=start)


def setup(seed: int, n: int, sticky: bool = True) -> tuple[Network, list[SessionClient]]:
    net = start_cluster(seed, n)
    clients = [
        SessionClient(net, "keep-a", 6, 3, 3.0, sticky=sticky),
        SessionClient(net, "keep-b", 4, 2, 5.0, sticky=sticky),
        SessionClient(net, "killed", 5, 2, 4.0, stop_at=45.0, sticky=sticky),
        SessionClient(net, "closed", 3, 2, 6.0, stop_at=50.0, close=True, sticky=sticky),
    ]
    return net, clients


def entry_of(net: Network, client: SessionClient) -> str:
    assert client.entry is not None and net.nodes[client.entry].core is not None
    return client.entry


@pytest.mark.parametrize(("seed", "n_nodes"), [(101, 3), (102, 3), (103, 4), (104, 5)])
def test_the_node_a_session_renews_through_is_killed(seed: int, n_nodes: int) -> None:
    net, clients = setup(seed, n_nodes)
    net.run_until(30.0)
    probe = Probe(net)
    probe.problems += check_invariants(net, all_instances(clients[:2]))  # type: ignore[arg-type]
    victim = entry_of(net, clients[0])
    net.crash(victim)
    watch_live(net, clients, probe, 30.0, {victim})
    watch_no_resurrection(net, all_instances(clients[2:]), probe, 30.0)  # type: ignore[arg-type]
    probe.problems += run_settled(net, 45.0 + 30.0 + SETTLE)
    probe.problems += check_invariants(net, all_instances(clients), down=(victim,))  # type: ignore[arg-type]
    if any(c.redos for c in clients[:2]):
        probe.fail(f"a live client had to register again: {[c.redos for c in clients]}")
    assert not probe.problems, scenario_message(net, f"kill {victim}", probe.problems)


@pytest.mark.parametrize(("seed", "order"), [(111, "runtime"), (112, "held"), (113, "tick")])
def test_the_node_a_session_renews_through_is_paused_past_unhealthy_after(
    seed: int, order: str
) -> None:
    net, clients = setup(seed, 3)
    net.run_until(30.0)
    victim = entry_of(net, clients[0])
    probe = Probe(net)
    net.pause(victim)
    net.at(30.0 + 20.0, net.resume, victim, order)  # 20 s > unhealthy_after (15 s)
    # the paused node and, for a recovery budget after its resumption, the node itself
    watch_live(net, clients, probe, 30.0, {victim})
    watch_no_resurrection(net, all_instances(clients[2:]), probe, 30.0)  # type: ignore[arg-type]
    probe.problems += run_settled(net, 50.0 + 30.0 + SETTLE)
    probe.problems += check_invariants(net, all_instances(clients))  # type: ignore[arg-type]
    assert not probe.problems, scenario_message(net, f"pause {victim}", probe.problems)


@pytest.mark.parametrize("seed", [121, 122, 123, 124])
def test_the_node_a_session_renews_through_is_partitioned_off(seed: int) -> None:
    """The client's server alone on one side for 40 s: renewals reach it only (the real
    client is content with its answers), so the majority judges the instances silent and
    evicts them; at the heal, the server's evidence refutes those judgments (and the
    client's renewals say which instances to register again): no live instance is lost.
    A killed client's instances are evicted everywhere and never come back."""
    net, clients = setup(seed, 3)
    net.run_until(30.0)
    victim = entry_of(net, clients[0])
    rest = [n for n in net.nodes if n != victim]
    net.at(30.0, set_groups, net, [frozenset({victim}), frozenset(rest)])
    net.at(70.0, set_groups, net, None)
    probe = Probe(net)
    watch_no_resurrection(net, all_instances(clients[2:]), probe, 70.0)  # type: ignore[arg-type]
    probe.problems += run_settled(net, 70.0 + SETTLE)
    probe.problems += check_invariants(net, all_instances(clients))  # type: ignore[arg-type]
    assert not probe.problems, scenario_message(net, f"partition {victim}", probe.problems)


@pytest.mark.parametrize("seed", [131, 132])
def test_sessions_renewed_through_random_nodes_survive_message_loss(seed: int) -> None:
    net, clients = setup(seed, 4, sticky=False)
    net.loss = 0.2
    net.at(60.0, setattr, net, "loss", 0.0)
    probe = Probe(net)
    watch_no_resurrection(net, all_instances(clients[2:]), probe, 60.0)  # type: ignore[arg-type]
    probe.problems += run_settled(net, 60.0 + SETTLE)
    probe.problems += check_invariants(net, all_instances(clients))  # type: ignore[arg-type]
    assert not probe.problems, scenario_message(net, "loss 0.2", probe.problems)


def test_a_renewal_costs_one_message_per_peer_whatever_the_session_holds() -> None:
    net, clients = setup(141, 3)
    net.run_until(30.0)
    before = dict(net.counts)
    net.run_until(40.0)
    kinds = ("pub_sessions", "call_sessions", "pub_delta")
    sent = {k: net.counts.get(k, 0) - before.get(k, 0) for k in kinds}
    renewals = net.counts.get("client_session_renew", 0) - before.get("client_session_renew", 0)
    assert renewals == 8  # four clients, two intervals
    # published once, and sent as a request to each of the two peers (the second path)
    assert sent["pub_sessions"] <= renewals and sent["pub_delta"] == 0, sent
    assert 0 < sent["call_sessions"] <= 2 * renewals, sent
    core: DistroNode = core_of(net, "n0")
    assert len(core.store.sessions) == 4
    assert core.store.sessions.instance_count == sum(len(c.instances) for c in clients)
    _ = ErrorCode  # (imported for replays that print codes)


@pytest.mark.parametrize(("seed", "cut"), [(151, 20.0), (152, 20.0), (153, 40.0), (154, 40.0)])
def test_a_node_cut_off_from_the_session_clients_heals_without_marking_them(
    seed: int, cut: float
) -> None:
    """A node no client renews through alone for ``cut`` s (past unhealthy_after): it
    judges every session silent.  At the heal its marks reach nodes that kept hearing
    the renewals; their evidence must refute them at once: no live instance is ever
    unhealthy or missing on a node of the majority (chaos ``dereg-partition``)."""
    net, clients = setup(seed, 3)
    net.run_until(30.0)
    entries = {c.entry for c in clients[:2]}
    victim = next(n for n in sorted(net.nodes) if n not in entries)
    rest = [n for n in net.nodes if n != victim]
    net.at(30.0, set_groups, net, [frozenset({victim}), frozenset(rest)])
    net.at(30.0 + cut, set_groups, net, None)
    probe = Probe(net)
    watch_live(net, clients[:2], probe, 30.0, {victim})
    probe.problems += run_settled(net, 30.0 + cut + SETTLE)
    probe.problems += check_invariants(net, all_instances(clients))  # type: ignore[arg-type]
    assert not probe.problems, scenario_message(net, f"partition {victim}", probe.problems)


@pytest.mark.parametrize("seed", [161, 162, 163, 164])
def test_a_node_deaf_to_the_clients_server_does_not_judge_its_sessions(seed: int) -> None:
    """One link lost one way for 40 s: a node hears nothing from the node a client renews
    through, while the third node still hears both (their views disagree).  The renewals
    the deaf node misses may be reaching the cluster through the node it cannot hear:
    it must not judge the session (chaos ``loss-delay``, seed 1309842223)."""
    net, clients = setup(seed, 3)
    net.run_until(30.0)
    server = entry_of(net, clients[0])
    deaf = next(n for n in sorted(net.nodes) if n != server)
    net.oneway_loss[(server, deaf)] = 1.0
    net.at(70.0, net.oneway_loss.pop, (server, deaf))
    probe = Probe(net)
    watch_live(net, clients[:1], probe, 30.0, set())
    probe.problems += run_settled(net, 70.0 + SETTLE)
    probe.problems += check_invariants(net, all_instances(clients))  # type: ignore[arg-type]
    assert not probe.problems, scenario_message(net, f"{server} -> {deaf} lost", probe.problems)
