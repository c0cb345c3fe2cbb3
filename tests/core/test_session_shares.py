"""Review finding F-sessflood: one client cannot take the node's session table.

Sans-IO, fake clock: each client (a key's name, or a connection's routing id on a node
without keys) may hold ``max_sessions_per_client`` sessions it opened through this node
(default ``max_sessions // 16``), and a session that holds no instance is forgotten after
``empty_session_after`` without a renewal, not ``evict_after``.
"""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from answers import served_map, stats_map

from meshreg.core.distro import ClusterPolicy, DistroNode
from meshreg.core.health import HealthPolicy
from meshreg.core.quotas import LimitsPolicy
from meshreg.core.registry import RegistryNode
from meshreg.errors import ConfigError, ErrorCode
from meshreg.wire.messages import RequestRejected, parse_request

POLICY = HealthPolicy(
    check_interval=1.0, unhealthy_after=3.0, evict_after=30.0, empty_session_after=5.0
)
SID = "0123456789abcdef0123456789abcdef"


def sid(n: int) -> str:
    return f"{n:032x}"


def body(op: str, req_id: int = 1, **fields: Any) -> bytes:
    return msgpack.packb({"v": 1, "id": req_id, "op": op, **fields})


class Lone:
    def __init__(self, policy: HealthPolicy = POLICY, **limits: int) -> None:
        self.now = 0.0
        self.node = RegistryNode(
            policy, 1, 0.0, "127.0.0.1:7800", detect_stalls=False, limits=LimitsPolicy(**limits)
        )

    def handle(self, op: str, client: Any = None, **fields: Any) -> Any:
        result = served_map(self.node, parse_request(body(op, **fields)), self.now, client=client)
        self.node.take_effects()
        return result

    def refused(self, op: str, client: Any = None, **fields: Any) -> RequestRejected:
        before = (self.node.store.counts(), len(self.node.store.sessions))
        with pytest.raises(RequestRejected) as info:
            self.handle(op, client, **fields)
        assert (self.node.store.counts(), len(self.node.store.sessions)) == before
        return info.value

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds / 0.1)):
            self.now = round(self.now + 0.1, 6)
            self.node.tick(self.now)
            self.node.take_effects()

    def sessions(self) -> set[str]:
        return set(self.node.store.sessions.by_id)


def test_the_default_share_is_a_sixteenth_of_the_table() -> None:
    assert LimitsPolicy().sessions_per_client == 100_000 // 16
    assert LimitsPolicy(max_sessions=320).sessions_per_client == 20
    assert LimitsPolicy(max_sessions=10).sessions_per_client == 1
    assert LimitsPolicy(max_sessions=320, max_sessions_per_client=50).sessions_per_client == 50
    with pytest.raises(ConfigError, match="max_sessions_per_client"):
        LimitsPolicy(max_sessions_per_client=-1)


def test_a_client_gets_its_share_and_the_others_still_get_theirs() -> None:
    n = Lone(max_sessions=320)  # share: 20
    for _ in range(20):
        n.handle("session_open", client=b"\x00conn-a")
    exc = n.refused("session_open", client=b"\x00conn-a")
    assert exc.code == ErrorCode.RESOURCE_EXHAUSTED
    for words in ("session_open", "max_sessions_per_client = 20", "holds 20 sessions",
                  "connection 00636f6e6e2d61", "session_close", "per-instance beats"):  # fmt: skip
        assert words in exc.message, (words, exc.message)
    exc = n.refused("session_renew", client=b"\x00conn-a", session=SID)  # a new one, too
    assert "max_sessions_per_client" in exc.message
    # another client (a key, by name) has its own share
    assert n.handle("session_open", client="app", session=SID)["session"] == SID
    stats = stats_map(n.node, n.now)
    assert stats["rejected_quota"] == {"max_sessions_per_client": 2}
    assert stats["limits"]["max_sessions_per_client"] == 0  # 0: max_sessions // 16
    assert stats["sessions"]["count"] == 21


def test_what_a_client_holds_is_served_as_usual_over_its_share() -> None:
    n = Lone(max_sessions=16)  # share: 1
    n.handle("session_open", client="app", session=SID)
    n.refused("session_open", client="app", session=sid(2))
    assert n.handle("session_open", client="app", session=SID)["session"] == SID  # held
    assert n.handle("session_renew", client="app", session=SID)["known"] is True
    n.handle("register", client="app", service="s", ip="10.0.0.1", port=1, session=SID)
    assert n.handle("session_renew", client="app", session=SID)["instances"] == 1


def test_a_closed_or_forgotten_session_gives_its_place_back() -> None:
    n = Lone(max_sessions=16)  # share: 1
    n.handle("session_open", client="app", session=SID)
    n.handle("session_close", client="app", session=SID)
    n.handle("session_open", client="app", session=sid(2))  # the close made room
    n.run(5.5)  # empty, never renewed: forgotten after empty_session_after
    assert n.sessions() == set()
    n.handle("session_open", client="app", session=sid(3))  # and so did the expiry


def test_sessions_no_client_opened_count_in_no_share() -> None:
    """Renewals from peers and requests without a client (a write forwarded here)."""
    n = Lone(max_sessions=16)  # share: 1
    n.handle("session_open", client="app", session=SID)
    for i in range(2, 5):
        n.handle("session_open", session=sid(i))
        n.handle("register", service="s", ip=f"10.0.0.{i}", port=1, session=sid(i + 10))
    assert len(n.sessions()) == 7


def test_a_session_a_register_creates_counts_in_the_share() -> None:
    """review13: registers naming fresh session ids (then deregistered and renewed)
    took the whole table for one key; now they are held to its share."""
    n = Lone(max_sessions=32)  # share: 2
    n.handle("session_open", client="app", session=SID)
    n.handle("register", client="app", service="s", ip="10.0.0.1", port=1, session=sid(1))
    exc = n.refused("register", client="app", service="s", ip="10.0.0.2", port=1,
                    session=sid(2))  # fmt: skip
    assert "max_sessions_per_client" in exc.message and "namespace 'public'" in exc.message
    n.handle("register", client="app", service="s", ip="10.0.0.2", port=1, session=sid(1))
    n.handle("register", client="other", service="s", ip="10.0.0.3", port=1, session=sid(3))


def test_the_node_wide_limit_still_holds_over_every_share() -> None:
    n = Lone(max_sessions=3, max_sessions_per_client=10)
    for i in range(3):
        n.handle("session_open", client="app", session=sid(i))
    exc = n.refused("session_open", client="other", session=SID)
    assert "[limits] max_sessions = 3" in exc.message


def test_an_empty_session_is_forgotten_after_empty_session_after_not_evict_after() -> None:
    n = Lone()
    n.handle("session_open", client="a", session=sid(1))  # opened, never used
    n.handle("session_open", client="a", session=sid(2))  # kept renewing, empty
    n.handle("session_open", client="a", session=sid(3))  # registered in right away
    n.handle("register", client="a", service="s", ip="10.0.0.1", port=1, session=sid(3))
    for _ in range(4):
        n.run(2.0)
        n.handle("session_renew", client="a", session=sid(2))
        n.handle("session_renew", client="a", session=sid(3))
    assert n.sessions() == {sid(2), sid(3)}  # 8 s: past empty_session_after (5 s) only
    n.run(6.5)
    # sid(3) holds an instance: its session lives by the instance rules (evict_after),
    # so it is still here, its instance marked unhealthy
    assert n.sessions() == {sid(3)}


def test_an_emptied_session_waits_empty_session_after_from_its_last_renewal() -> None:
    n = Lone()
    n.handle("session_open", client="a", session=SID)
    n.handle("register", client="a", service="s", ip="10.0.0.1", port=1, session=SID)
    n.run(1.0)
    n.handle("session_renew", client="a", session=SID)
    n.handle("deregister", service="s", ip="10.0.0.1", port=1)
    n.run(4.5)
    assert n.sessions() == {SID}
    n.run(1.5)
    assert n.sessions() == set()


def test_empty_session_after_is_capped_by_evict_after() -> None:
    policy = HealthPolicy(check_interval=1.0, unhealthy_after=2.0, evict_after=3.0)
    assert policy.empty_session_after == 10.0  # the default
    n = Lone(policy)
    n.handle("session_open", client="a", session=SID)
    n.run(4.5)
    assert n.sessions() == set()


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), "5"])
def test_empty_session_after_must_be_a_positive_number(value: Any) -> None:
    with pytest.raises(ConfigError, match="empty_session_after"):
        HealthPolicy(empty_session_after=value)


def test_a_cluster_member_counts_the_client_it_serves() -> None:
    """The share is per node the client's requests arrive at, as in a lone node."""
    node = DistroNode(
        POLICY,
        ClusterPolicy(),
        "a",
        "127.0.0.1:7800",
        ["127.0.0.1:7810"],
        epoch=1,
        now=0.0,
        limits=LimitsPolicy(max_sessions=16),
    )
    served_map(node, parse_request(body("session_open", session=SID)), 0.0, client="app")
    with pytest.raises(RequestRejected) as info:
        served_map(node, parse_request(body("session_open", session=sid(2))), 0.0, client="app")
    assert "max_sessions_per_client = 1" in info.value.message
