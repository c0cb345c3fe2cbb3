"""A register that names a new session and that this node forwards to the service's
owner counts in its client's share *here*, where the client is known (review13: the
owner creates the session from the forward with no share, so one key writing to services
other nodes own could fill every node's session table)."""

from __future__ import annotations

from answers import peer_reply

from meshreg.config import ClusterPolicy
from meshreg.core.distro import DistroNode, PeerCall
from meshreg.core.effects import Forward, Rejected, SplitBatch
from meshreg.core.health import HealthPolicy
from meshreg.core.mapping import responsible_node
from meshreg.core.quotas import LimitsPolicy
from meshreg.core.requests import RegisterBatch, RegisterInstance
from meshreg.errors import ErrorCode
from meshreg.model import InstanceId, ServiceKey
from meshreg.wire.peer import Beacon

ME, OTHER = "10.0.0.1:7800", "10.0.0.2:7800"


def node() -> DistroNode:
    """ME and OTHER, both ready; a share of 2 sessions per client (max_sessions 32)."""
    n = DistroNode(HealthPolicy(), ClusterPolicy(), ME, ME, [OTHER], 7, 0.0,
                   limits=LimitsPolicy(max_sessions=32))  # fmt: skip
    n.on_replication(Beacon(OTHER, OTHER, 9, True, 0, (ME, OTHER)), 0.0)
    n.tick(0.0)
    for call in [e for e in n.take_effects() if isinstance(e, PeerCall) and e.op != "beacon"]:
        peer_reply(n, call.tag, {"node": OTHER, "digests": [], "more": False}, 0.0)
    n.tick(0.0)
    n.take_effects()
    assert n.ready and n.members() == (ME, OTHER)
    return n


def owned_by_other() -> ServiceKey:
    for i in range(1000):
        key = ServiceKey("public", "DEFAULT_GROUP", f"svc{i}")
        if responsible_node(key, (ME, OTHER)) == OTHER:
            return key
    raise AssertionError("no service maps to OTHER")


def register(i: int, key: ServiceKey, session: str) -> RegisterInstance:
    return RegisterInstance(i, key, InstanceId("10.9.0.1", 1000 + i, "DEFAULT"), 1.0, True,
                            {}, session)  # fmt: skip


def sid(i: int) -> str:
    return f"{i:032x}"


def test_a_forwarded_register_naming_new_sessions_is_held_to_the_share() -> None:
    n, key = node(), owned_by_other()
    for i in (1, 2):
        assert isinstance(n.handle(register(i, key, sid(i)), 1.0, client="app"), Forward)
    refused = n.handle(register(3, key, sid(3)), 1.0, client="app")
    assert isinstance(refused, Rejected) and refused.code is ErrorCode.RESOURCE_EXHAUSTED
    assert "max_sessions_per_client" in refused.message
    assert isinstance(n.handle(register(4, key, sid(1)), 1.0, client="app"), Forward)  # known
    assert isinstance(n.handle(register(5, key, sid(5)), 1.0, client="other"), Forward)
    assert isinstance(n.handle(register(6, key, sid(6)), 1.0), Forward)  # a peer: no share


def test_a_batch_entry_over_the_share_is_refused_here_the_others_forwarded() -> None:
    n, key = node(), owned_by_other()
    entries = tuple(register(i, key, sid(i)) for i in (1, 2, 3))
    answer = n.handle(RegisterBatch(9, "public", entries), 1.0, client="app")
    assert isinstance(answer, SplitBatch)
    ((forward, indices),) = answer.parts
    assert indices == (0, 1)
    ((index, result),) = answer.results
    assert index == 2 and result is not None and result.code is ErrorCode.RESOURCE_EXHAUSTED
