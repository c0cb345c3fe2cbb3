"""The CURVE path under the seeded simulation: real node runtimes with a cluster key
and an ACL, over the in-memory transport that admits connections by the ZAP rules
(``transport/zap.admit``; docs/SECURITY.md).

What runs here that the insecure simulation never reaches: the runtime's secure drain
(the per-message ``User-Id``), the ACL on every request and subscription, the peer
plane admitting only the cluster key, and all of it under the random fault schedules.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from meshreg.config import PEER_PORT_OFFSET, REPLICATION_PORT_OFFSET, parse_address
from meshreg.errors import ErrorCode
from meshreg.model import ServiceKey
from meshreg.wire.notifications import topic_for

sys.path.insert(0, os.path.dirname(__file__))

from network import Network, Outcome, SimKeys, SimNode  # noqa: E402
from test_distro_sim import scenario_message  # noqa: E402
from test_faults_sim import REPLAY_RANDOM, plan_random  # noqa: E402

WHERE = {"namespace": "public", "group": "DEFAULT_GROUP"}
SECURE_SEEDS = int(os.environ.get("MESHREG_SIM_SECURE_SEEDS", "3"))


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> SimKeys:
    return SimKeys.make(tmp_path_factory.mktemp("curve"))


def secure_cluster(seed: int, keys: SimKeys, n: int = 3) -> Network:
    net = Network(seed, [f"n{i}" for i in range(n)], keys=keys)
    for i, node_id in enumerate(net.nodes):
        net.at(0.1 * i, net.start, node_id)
    net.run_until(5.0)
    return net


def ask(
    net: Network, entry: SimNode, op: str, key: bytes | None = None, **fields: Any
) -> list[Outcome]:
    """A request now (as ``key``; None: the ``app`` key); the list gets its outcome."""
    out: list[Outcome] = []
    net.client_request(entry, op, next(net.req_ids), fields, out.append, key=key)
    net.run_until(net.now + 0.5)
    return out


def reg(service: str, index: int) -> dict[str, Any]:
    return dict(WHERE, service=service, ip=f"10.3.0.{index + 1}", port=9100 + index, weight=1.0)


def listed_everywhere(net: Network, service: str) -> dict[str, int]:
    """How many instances of ``service`` each node's store holds."""
    key = ServiceKey(WHERE["namespace"], WHERE["group"], service)
    out = {}
    for node_id, node in net.nodes.items():
        assert node.core is not None
        svc = node.core.store.services.get(key)
        out[node_id] = len(svc.instances) if svc is not None else 0
    return out


def refused(net: Network) -> dict[str, int]:
    return {
        node_id: node.runtime.transport.stats()["handshakes_refused"]
        for node_id, node in net.nodes.items()
        if node.runtime is not None and node.runtime.transport is not None
    }


@pytest.mark.parametrize("seed", range(SECURE_SEEDS))
def test_random_faults_with_curve_and_an_acl_never_lose_a_live_instance(
    seed: int, keys: SimKeys
) -> None:
    """The random fault mixes of test_faults_sim, every node with a key and an ACL:
    the same guarantees, through the secure paths, with no connection refused."""
    sc = plan_random(seed, keys=keys)
    sc.check(sc.end, REPLAY_RANDOM.format(seed=seed) + " (with keys: test_security_sim)")
    net = sc.net
    assert all(n.runtime is not None and n.runtime.secure for n in net.nodes.values()), (
        "a node ran without CURVE"
    )
    assert sum(refused(net).values()) == 0, f"legitimate connections refused: {refused(net)}"
    assert net.counts.get("refused_handshake", 0) == 0


def test_keys_outside_the_acl_reach_nothing(keys: SimKeys) -> None:
    """A stranger's key, and no key at all, are refused at the handshake on every node:
    no reply, nothing registered, each refusal counted."""
    net = secure_cluster(71, keys)
    problems = []
    for node_id, node in net.nodes.items():
        for who, key in (("stranger", keys.stranger), ("no key", b"")):
            out = ask(net, node, "register", key=key, **reg("intruded", 1))
            net.run_until(net.now + 4.5)  # past the simulated client's timeout
            if out != [("timeout", None)]:
                problems.append(f"{who} on {node_id} got {out}")
    net.run_until(net.now + 2.0)
    if any(listed_everywhere(net, "intruded").values()):
        problems.append(f"state changed: {listed_everywhere(net, 'intruded')}")
    if any(v != 2 for v in refused(net).values()):
        problems.append(f"handshakes refused per node {refused(net)}, expected 2 each")
    ok = ask(net, net.nodes["n0"], "register", **reg("allowed", 1))
    if [s for s, _ in ok] != ["ok"]:
        problems.append(f"the app key was not served: {ok}")
    assert not problems, scenario_message(net, "keys outside the ACL", problems)


def test_a_client_key_cannot_speak_the_peer_protocol(keys: SimKeys) -> None:
    """The peer plane (P+2, P+3) admits the cluster key only: even the ``app`` key,
    admin on every name, cannot forward a write or listen to replication."""
    net = secure_cluster(72, keys)
    problems = []
    got: list[list[bytes]] = []
    host, port = parse_address(net.nodes["n1"].address)
    sub = net.client(f"{host}:{port + REPLICATION_PORT_OFFSET}", got.append, keys.app)
    net.subscribers.setdefault(sub.endpoint, []).append(sub)  # a SUB on n1's replication
    for node in net.nodes.values():
        out: list[Outcome] = []
        fields = reg("poisoned", 1)
        net.client_request(
            node, "register", next(net.req_ids), fields, out.append, keys.app, PEER_PORT_OFFSET
        )
        net.run_until(net.now + 4.5)
        if out != [("timeout", None)]:
            problems.append(f"the peer port of {node.node_id} answered a client key: {out}")
    for i in range(5):  # replication happens meanwhile: the client's SUB gets none of it
        ask(net, net.nodes["n0"], "register", **reg("replicated", i))
    net.run_until(net.now + 2.0)
    if got:
        problems.append(f"a client key received {len(got)} peer-plane messages")
    if any(listed_everywhere(net, "poisoned").values()):
        problems.append(f"a client key changed state: {listed_everywhere(net, 'poisoned')}")
    if listed_everywhere(net, "replicated") != {n: 5 for n in net.nodes}:
        problems.append(f"replication did not converge: {listed_everywhere(net, 'replicated')}")
    refusals = refused(net)
    if refusals.get("n1", 0) < 2 or any(v < 1 for v in refusals.values()):
        problems.append(f"refusals not counted: {refusals}")
    assert not problems, scenario_message(net, "client key on the peer plane", problems)


def test_the_acl_decides_at_the_entry_node_and_for_subscriptions(keys: SimKeys) -> None:
    """``orders`` may write ``orders*`` only, through any node (owner or not: a denied
    write is never forwarded); ``reader`` may read and watch but not write; a watch of
    a service its key may not read gets no notification."""
    net = secure_cluster(73, keys, n=4)
    problems = []
    pushed: dict[str, list[list[bytes]]] = {"reader": [], "orders": []}
    watched = "payments"
    for who in ("reader", "orders"):
        key = getattr(keys, who)
        sub = net.subscriber(net.nodes["n3"], pushed[who].append, key)
        sub.subscribe(topic_for(ServiceKey(WHERE["namespace"], WHERE["group"], watched)))
    net.run_until(net.now + 0.5)
    for index, node in enumerate(net.nodes.values()):
        out = ask(net, node, "register", key=keys.orders, **reg("orders-api", index))
        if [s for s, _ in out] != ["ok"]:
            problems.append(f"orders' own register via {node.node_id}: {out}")
        for who, service in (("orders", watched), ("reader", "orders-api")):
            out = ask(net, node, "register", key=getattr(keys, who), **reg(service, index))
            if out != [("error", ErrorCode.PERMISSION_DENIED)]:
                problems.append(f"{who} writing {service} via {node.node_id}: {out}")
        read = ask(net, node, "instances", key=keys.reader, service="orders-api", **WHERE)
        if not read or read[0][0] != "ok":
            problems.append(f"reader's read via {node.node_id}: {read}")
    out = ask(net, net.nodes["n0"], "register", **reg(watched, 9))  # app: allowed
    net.run_until(net.now + 2.0)
    if [s for s, _ in out] != ["ok"]:
        problems.append(f"app's register of {watched}: {out}")
    if listed_everywhere(net, "orders-api") != {n: 4 for n in net.nodes}:
        problems.append(f"orders-api: {listed_everywhere(net, 'orders-api')}")
    if listed_everywhere(net, watched) != {n: 1 for n in net.nodes}:
        problems.append(f"{watched}: {listed_everywhere(net, watched)} (a denied write landed?)")
    if not pushed["reader"]:
        problems.append("the reader's watch got no notification")
    if pushed["orders"]:
        problems.append(f"a watch the ACL denies got {len(pushed['orders'])} notifications")
    denied = {n: node.runtime.denied for n, node in net.nodes.items() if node.runtime is not None}
    if sum(denied.values()) < 8:
        problems.append(f"denials counted {denied}, expected 8 or more")
    assert not problems, scenario_message(net, "ACL at the entry node", problems)


def test_simkeys_files_are_what_a_node_loads(tmp_path: Path) -> None:
    """The fixture's files are the real formats (``meshreg keygen``, the ACL file)."""
    from meshreg.security.acl import Acl

    keys = SimKeys.make(tmp_path)
    acl = Acl.load(keys.acl)
    assert acl.by_key(keys.app) is not None
    assert acl.by_key(keys.stranger) is None
    assert acl.by_key(keys.cluster_public) is None
