"""A node tells its clients the least ``unhealthy_after`` of the members it hears up.

During a rolling restart that lowers ``unhealthy_after`` (15 s -> 3 s), a client renewing
through a node not yet restarted was told 15 s and renewed every 5 s, and the restarted
nodes, which judge the services they own by 3 s, marked its instances unhealthy between
its renewals for as long as its node ran the old setting (review27 F6's remainder).
Beacons carry each node's ``unhealthy_after`` (``unhealthy_after_ms``); ``ping``,
``session_open`` and ``session_renew`` answer the least of the members heard up, the
node's own included.  Driven on a fake clock: n1 (3 s) with peers n2 and n3.
"""

from __future__ import annotations

import msgpack
from answers import served_map
from test_distro_faults import Member

from meshreg.core.distro import ADVISE_FLOOR
from meshreg.core.effects import PaceAdvised
from meshreg.wire.messages import parse_request
from meshreg.wire.peer import Beacon, decode_replication, encode_beacon

A, B = "10.0.0.2:7800", "10.0.0.3:7800"
VIEW = ("n1", "n2", "n3")


def beacon(m: Member, peer: str, address: str, unhealthy_ms: int | None) -> None:
    b = Beacon(peer, address, 9, True, 0, VIEW, unhealthy_ms=unhealthy_ms)
    m.node.on_replication(b, m.now)


def run(m: Member, seconds: float, told: dict[str, int | None]) -> None:
    for _ in range(round(seconds / 0.1)):
        beacon(m, "n2", A, told["n2"])
        beacon(m, "n3", B, told["n3"])
        m.step(0.1)


def told(m: Member, op: str, **fields: object) -> float:
    body = {"v": 1, "id": 7, "op": op, **fields}
    return served_map(m.node, parse_request(msgpack.packb(body)), m.now)["unhealthy_after"]


def test_a_peer_restarted_with_a_lower_unhealthy_after_lowers_what_clients_are_told() -> None:
    m = Member()
    own = m.node.policy.unhealthy_after
    run(m, 2.0, {"n2": None, "n3": None})  # older peers: not told
    assert told(m, "ping") == own
    run(m, 2.0, {"n2": 1000, "n3": None})  # n2 restarted with --unhealthy-after 1
    assert told(m, "ping") == 1.0
    opened = served_map(m.node, parse_request(msgpack.packb(
        {"v": 1, "id": 8, "op": "session_open", "namespace": "public",
         "session": "0123456789abcdef0123456789abcdef"})), m.now)  # fmt: skip
    assert opened["unhealthy_after"] == 1.0
    assert told(m, "session_renew", namespace="public",
                session="0123456789abcdef0123456789abcdef") == 1.0  # fmt: skip
    run(m, 2.0, {"n2": 60_000, "n3": 60_000})  # a longer one never raises it past ours
    assert told(m, "ping") == own
    assert m.node.stats_result(m.now).timings.unhealthy_after == own  # stats: its own


def test_a_peer_that_is_down_no_longer_counts() -> None:
    m = Member()
    run(m, 2.0, {"n2": 1000, "n3": None})
    assert told(m, "ping") == 1.0
    for _ in range(round((m.node.cluster.peer_timeout + 2) / 0.1)):  # n2 silent
        beacon(m, "n3", B, None)
        m.step(0.1)
    assert told(m, "ping") == m.node.policy.unhealthy_after


def test_the_beacon_field_round_trips_and_a_value_out_of_bounds_is_ignored() -> None:
    """Advice only: a value out of this node's bounds (a newer node's wider ones) is
    ignored, the beacon is not (review68: refusing it made the sender look down)."""
    kind, body = encode_beacon(Beacon("n2", A, 9, True, 0, VIEW, unhealthy_ms=3000))
    assert decode_replication([kind, body]).unhealthy_ms == 3000
    fields = msgpack.unpackb(body)
    for bad in (0, 99, -5, 1.5, "3000", 31 * 86_400_000):
        bad_body = msgpack.packb({**fields, "unhealthy_after_ms": bad})
        beacon = decode_replication([kind, bad_body])
        assert beacon.node == "n2" and beacon.unhealthy_ms is None, bad


def test_what_clients_are_told_is_bounded_by_a_fifth_of_the_node_s_own() -> None:
    """review68 F2: one member's 100 ms made every node tell its clients 0.1 s, and every
    client of the cluster renewed 10 times a second; a fifth of our own at the least
    (a rolling restart 15 s -> 3 s is advised in full), said once."""
    m = Member()
    own = m.node.policy.unhealthy_after
    run(m, 2.0, {"n2": 100, "n3": None})
    assert told(m, "ping") == own / ADVISE_FLOOR
    said = [e for e in m.effects if isinstance(e, PaceAdvised)]
    assert len(said) == 1 and said[0].member == "n2" and said[0].told == 0.1
    run(m, 3.0, {"n2": None, "n3": None})  # (n2 restarted with the cluster's value)
    assert told(m, "ping") == own
    said = [e for e in m.effects if isinstance(e, PaceAdvised)]
    assert len(said) == 2 and said[1].member == "" and said[1].advised == own
