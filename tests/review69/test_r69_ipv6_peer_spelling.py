"""review69: an IPv6 cluster's peers are kept bare (``fd77::2:7800``, config._split_peers)
and a node announces ``{advertise or host}:{port}`` (bare too, for ``--host fd77::2``), but
two other spellings of the same member still use brackets, so the member listed is never
heard at its listed address (a "(never heard)" row, a configured member counted down).

F3: ``NodeConfig.peer_aliases`` (changed by this commit to ``split_node_address``) maps a
peer named by a host name that resolves to an IPv6 address under ``[ip]:port``, while that
node announces ``ip:port``: the alias never matches (``Membership.peer_at``).

F4: ``--advertise [fd77::1]`` (accepted by ``_validate_advertise``, which strips the
brackets to check it) makes the node announce ``[fd77::1]:7800``; its peers list it as
``fd77::1:7800`` (from ``--peer [fd77::1]:7800``)."""

from __future__ import annotations

import socket

import pytest

from meshreg.config import NodeConfig
from meshreg.core.membership import Membership, MemberState


def _heard_by_b(announced: str, b: NodeConfig, listed: str) -> Membership:
    m = Membership(b.address, b.address, b.peer_addresses(), 3.0, b.peer_aliases())
    m.heard("node-a-id", announced, 1, True, 1, 0.0)
    assert listed in m.peers, m.peers
    return m


def test_f3_a_peer_named_by_a_name_resolving_to_ipv6_is_heard_at_its_listed_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = socket.getaddrinfo

    def fake(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host == "node-a":
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("fd77::1", port, 0, 0))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    a = NodeConfig(host="fd77::1", port=7800, peers=("node-a:7800", "[fd77::2]:7800"))
    b = NodeConfig(host="fd77::2", port=7800, peers=("node-a:7800", "[fd77::2]:7800"))
    assert a.address == "fd77::1:7800"  # what node a announces in its beacons
    m = _heard_by_b(a.address, b, "node-a:7800")
    assert m.peers["node-a:7800"].state is MemberState.UP, (b.peer_aliases(), m.peers)
    assert set(m.peers) == {"node-a:7800"}, m.peers  # not a second, unlisted member


def test_f4_a_bracketed_advertise_is_heard_at_the_listed_address() -> None:
    a = NodeConfig(host="::", advertise="[fd77::1]", port=7800, peers=("[fd77::2]:7800",))
    a.validate()  # accepted
    b = NodeConfig(host="fd77::2", port=7800, peers=("[fd77::1]:7800",))
    b.validate()
    m = _heard_by_b(a.address, b, "fd77::1:7800")
    assert m.peers["fd77::1:7800"].state is MemberState.UP, (a.address, m.peers)
    assert set(m.peers) == {"fd77::1:7800"}, m.peers
