"""A register made while its service's responsible node is frozen (SIGSTOP, a VM pause)
succeeds within the client's default time-out when healthy nodes exist (found by an
outside review, review13, F-freeze-reg).

Every default, as the reviewer ran it: 3 nodes (default peer timeout, 3 s: the frozen
owner stays a member, so the others keep forwarding its writes to it), the Python
client ``Client([A, B, C])`` with its default ``timeout`` (3 s) and ``attempt_timeout``
(1 s). Before: the attempt at the frozen owner took 1 s, the next node forwarded the
write to the owner and waited ``peer_request_timeout`` (2 s) for it, so the call failed
with ``ServerUnreachableError`` at exactly 3 s, naming two healthy nodes as silent. Now
a node that forwards a write with a deadline answers it (the owner's answer, or its own
fallback) before the client's attempt ends (PROTOCOL.md 2.1, "Deadline"), and a write
that does time out says its outcome is unknown, attempt by attempt.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import HOST, NodeProcess, free_port_pair, raw_request, start_all, wait_until

from meshreg import Client
from meshreg.client.defaults import DEFAULT_TIMEOUT
from meshreg.core.mapping import responsible_node
from meshreg.errors import OutcomeUnknownError
from meshreg.model import ServiceKey

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def default_cluster(started_nodes: list[NodeProcess]) -> list[NodeProcess]:
    """Three nodes with every default timing (the peer timeout included)."""
    ports = [free_port_pair() for _ in range(3)]
    peers = [arg for p in ports for arg in ("--peer", f"{HOST}:{p}")]
    nodes = [NodeProcess(*peers, port=p) for p in ports]
    started_nodes.extend(nodes)
    start_all(nodes)
    wait_until(lambda: all(_up(n, nodes) for n in nodes), 20, what="3 members up on every node")
    return nodes


def _up(node: NodeProcess, nodes: list[NodeProcess]) -> bool:
    reply: dict[str, Any] = raw_request(node.port, {"v": 1, "id": 1, "op": "cluster"})
    states = {m["address"]: m["state"] for m in reply["result"]["members"]}
    return all(states.get(n.address) == "up" for n in nodes)


def _owned_by(node: NodeProcess, nodes: list[NodeProcess], prefix: str) -> str:
    """A service ``node`` is responsible for (rendezvous over the members' ids, which
    default to host:port)."""
    members = sorted(n.address for n in nodes)
    return next(
        f"{prefix}{i}"
        for i in range(10_000)
        if responsible_node(ServiceKey("public", "DEFAULT_GROUP", f"{prefix}{i}"), members)
        == node.address
    )


def _listed(node: NodeProcess, service: str) -> list[str]:
    reply = raw_request(node.port, {"v": 1, "id": 1, "op": "instances", "service": service}, 2)
    return sorted(f"{i['ip']}:{i['port']}" for i in reply["result"]["instances"])


@pytest.fixture
def frozen() -> Iterator[list[NodeProcess]]:
    """Nodes a test froze: resumed (SIGCONT) whatever happens (the cluster fixture kills
    them after)."""
    stopped: list[NodeProcess] = []
    yield stopped
    for node in stopped:
        node.signal(signal.SIGCONT)


def _freeze(node: NodeProcess, frozen: list[NodeProcess]) -> None:
    frozen.append(node)
    node.freeze()


def _client(nodes: list[NodeProcess]) -> Client:
    """The reviewer's client: every default; connected (a ping answered) before the freeze."""
    c = Client([n.address for n in nodes])
    c.ping()
    return c


def _register_while_frozen(
    client: Client,
    owner: NodeProcess,
    frozen: list[NodeProcess],
    service: str,
    live: tuple[NodeProcess, ...],
) -> None:
    """Freeze the owner, register within the default timeout, see it on the live nodes."""
    _freeze(owner, frozen)
    start = time.monotonic()
    client.register(service, "10.70.0.1", 1)
    took = time.monotonic() - start
    assert took < DEFAULT_TIMEOUT, took
    wait_until(
        lambda: all(_listed(n, service) == ["10.70.0.1:1"] for n in live),
        5,
        what="the registered instance on the live nodes",
    )


@pytest.mark.parametrize("position", [0, 1, 2], ids=["owner-first", "owner-second", "owner-last"])
def test_register_while_the_owner_is_frozen_succeeds_within_the_default_timeout(
    default_cluster: list[NodeProcess], frozen: list[NodeProcess], position: int
) -> None:
    """A fresh client (no cluster view: it sends to its servers in order).  The owner
    first: the attempt at it times out (1 s), the next server forwards to it and must
    answer in time.  The owner second or last: the first server forwards to it and must
    answer within the first attempt (before: it waited 2 s for the owner, the client moved
    on to the next server, which did the same, and the call failed at 3 s naming two
    healthy nodes; the owner last is the reviewer's run, failing every time)."""
    owner = default_cluster[position]
    b, c = (n for n in default_cluster if n is not owner)
    service = _owned_by(owner, default_cluster, "frozen")
    client = _client(default_cluster)
    try:
        _register_while_frozen(client, owner, frozen, service, (b, c))
    finally:
        owner.signal(signal.SIGCONT)
        client.close()


def test_register_sent_straight_to_a_frozen_owner_succeeds_within_the_default_timeout(
    default_cluster: list[NodeProcess], frozen: list[NodeProcess]
) -> None:
    """The client knows the cluster view and sends the write straight to the owner (not
    its first server): the attempt at the frozen owner, then through its server (which
    forwards to the owner and must answer in time)."""
    first, owner, third = default_cluster
    keeper = _owned_by(first, default_cluster, "keeper")
    service = _owned_by(owner, default_cluster, "frozen")
    client = _client(default_cluster)
    try:
        client.register(keeper, "10.70.0.9", 9)  # a registration: the client fetches the view
        core = client._agent.core  # the sans-IO session: its view of the members
        wait_until(lambda: len(core._members) == 3, 5, what="the client knows the cluster view")
        _register_while_frozen(client, owner, frozen, service, (first, third))
    finally:
        owner.signal(signal.SIGCONT)
        client.close()


def test_a_register_that_times_out_says_its_outcome_is_unknown_attempt_by_attempt(
    default_cluster: list[NodeProcess], frozen: list[NodeProcess]
) -> None:
    """The client's only server is the frozen owner: nothing can answer. The error says
    the write may have been applied (it waits in the owner's socket until its deadline)
    and what happened at the server it tried."""
    owner = default_cluster[0]
    service = _owned_by(owner, default_cluster, "lost")
    client = Client([owner.address])  # one server: the frozen owner
    try:
        client.ping()
        _freeze(owner, frozen)
        start = time.monotonic()
        with pytest.raises(OutcomeUnknownError) as err:
            client.register(service, "10.70.0.1", 1)
        took = time.monotonic() - start
        assert took < DEFAULT_TIMEOUT + 0.5, took
        text = str(err.value)
        assert "outcome" in text and "unknown" in text, text
        assert "may have been applied" in text, text
        assert owner.address in text, text
        assert "no reply" in text, text
    finally:
        owner.signal(signal.SIGCONT)
        client.close()


def test_close_deregisters_a_register_still_in_flight(
    default_cluster: list[NodeProcess], frozen: list[NodeProcess]
) -> None:
    """review72 F3, with real processes: a provider registers (its server forwards to the
    frozen owner and answers with its own fallback at 0.7 s) and closes at once with the
    atexit budget (1 s).  Before: the close's list (after 0.5 s) did not name the register
    still in flight, so nothing deregistered it: the instance of a closed client stayed
    listed healthy for ``unhealthy_after`` (15 s) and listed for ``evict_after`` (30 s).
    Now the close deregisters it too (and once more after the register's answer)."""
    owner, entry = default_cluster[0], default_cluster[1]
    service = _owned_by(owner, default_cluster, "closing")
    client = Client([entry.address], handle_sigterm=False)  # no cluster view: via entry
    client.ping()
    _freeze(owner, frozen)
    forwarded = _forwarded(entry)
    outcome: list[BaseException | None] = []
    registering = threading.Thread(
        target=lambda: outcome.append(_attempt(lambda: client.register(service, "10.72.3.1", 1)))
    )
    registering.start()
    try:
        wait_until(lambda: _forwarded(entry) > forwarded, 2, 0.005, "the register forwarded")
        closed_at = time.monotonic()
        client.close(timeout=1.0)  # as atexit / SIGTERM closes it
        registering.join(5)
        live = [n for n in default_cluster if n is not owner]
        where = [n.address for n in live]
        wait_until(lambda: all(_listed(n, service) == [] for n in live), 5, 0.05,
                   f"the closed client's instance gone from {where}")  # fmt: skip
        gone_after = time.monotonic() - closed_at
        owner.signal(signal.SIGCONT)
        wait_until(lambda: _listed(owner, service) == [], 10, 0.1, "gone on the resumed owner")
        for node in default_cluster:  # and it stays gone (a late copy refused)
            assert _listed(node, service) == [], (node.address, outcome, gone_after)
    finally:
        owner.signal(signal.SIGCONT)
        client.close(timeout=1.0)


def _forwarded(node: NodeProcess) -> int:
    reply = raw_request(node.port, {"v": 1, "id": 1, "op": "stats"}, 2)
    return int(reply["result"]["forwarded"])


def _attempt(call: Any) -> BaseException | None:
    try:
        call()
    except Exception as exc:  # noqa: BLE001 (the close may refuse it: reported, not raised)
        return exc
    return None
