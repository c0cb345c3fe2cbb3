"""How long a forwarded write waits for its responsible node (``DistroNode.forward_wait``):
a write with a deadline is answered before the client's attempt ends (review13,
F-freeze-reg).  Fake clock and a wall-clock offset throughout.

The contract (PROTOCOL.md 2.1, "Deadline"; core/requests): the Python client sends each
attempt with ``deadline`` = the attempt's end + DEADLINE_SLACK (wall clock); a node that
forwards the write waits for the owner until FORWARD_LEAD before the deadline, then
applies it itself (``forward_failed``), which is before the deadline: applied, and
answered FORWARD_MARGIN before the client moves on.  Before, it waited
``peer_request_timeout`` (2 s, longer than the client's 1 s attempt): the client gave up
on a node that was working on its write, and the fallback itself was then refused as
late; with the owner frozen (a member for ``peer_timeout``), every write failed.
"""

from __future__ import annotations

import pytest
from answers import peer_reply

from meshreg.config import ClusterPolicy
from meshreg.core.distro import DistroNode
from meshreg.core.effects import Forward, PeerCall, Rejected, Reply, SplitBatch
from meshreg.core.health import HealthPolicy
from meshreg.core.mapping import responsible_node
from meshreg.core.requests import (
    BEAT_FORWARD_WAIT,
    DEADLINE_SLACK,
    FORWARD_LEAD,
    FORWARD_MARGIN,
    FORWARD_MIN_WAIT,
    Beat,
    DeregisterInstance,
    RegisterBatch,
    RegisterInstance,
    UpdateInstance,
)
from meshreg.core.results import Written
from meshreg.errors import ErrorCode
from meshreg.model import InstanceId, ServiceKey
from meshreg.wire.peer import Beacon

EPOCH = 7
WALL = 1_800_000_000.0  # the wall clock is the node's clock plus this
IID = InstanceId("10.1.1.1", 80, "DEFAULT")
ATTEMPT = 1.0  # s; the Python client's default attempt_timeout


def pair(peer_request_timeout: float = 2.0) -> tuple[DistroNode, ServiceKey]:
    """n1, ready, with n2 up; a service n2 is responsible for."""
    cluster = ClusterPolicy(peer_request_timeout=peer_request_timeout)
    node = DistroNode(
        HealthPolicy(), cluster, "n1", "10.0.0.1:7800", ["10.0.0.2:7800"], EPOCH, 0.0, WALL
    )
    node.on_replication(Beacon("n2", "10.0.0.2:7800", 99, True, 0), 0.0)
    node.tick(0.0)
    (call,) = [e for e in node.take_effects() if isinstance(e, PeerCall) and e.op != "beacon"]
    peer_reply(node, call.tag, {"node": "n2", "digests": [], "more": False}, 0.0)
    assert node.ready and node.members() == ("n1", "n2")
    key = next(
        k
        for k in (ServiceKey("public", "DEFAULT_GROUP", f"svc{i}") for i in range(100))
        if responsible_node(k, ("n1", "n2")) == "n2"
    )
    return node, key


def attempt_deadline(now: float, attempt: float = ATTEMPT) -> float:
    """The deadline the client sends with an attempt starting at ``now`` (same clocks)."""
    return WALL + now + attempt + DEADLINE_SLACK


def test_a_forwarded_write_is_answered_before_the_clients_attempt_ends() -> None:
    node, key = pair()
    now = 5.0
    req = RegisterInstance(7, key, IID, 1.0, True, {}, deadline=attempt_deadline(now))
    fwd = node.handle(req, now)
    assert type(fwd) is Forward
    assert fwd.wait == pytest.approx(ATTEMPT - FORWARD_MARGIN)  # 0.7 s of a 1 s attempt
    assert fwd.wait < node.cluster.peer_request_timeout
    # the owner did not answer within it: the fallback is applied (before the deadline)
    # and answered while the client still waits for this attempt
    answer = node.forward_failed(fwd, now + fwd.wait)
    assert type(answer) is Reply and answer.req_id == 7 and type(answer.result) is Written
    assert node.registry.holds(key, IID)
    assert node.registry.late_writes == 0


def test_before_the_fallback_after_peer_request_timeout_was_refused_as_late() -> None:
    """What the fix avoids: waiting ``peer_request_timeout`` outlives the deadline."""
    node, key = pair()
    req = RegisterInstance(7, key, IID, 1.0, True, {}, deadline=attempt_deadline(5.0))
    fwd = node.handle(req, 5.0)
    assert type(fwd) is Forward
    late = node.forward_failed(fwd, 5.0 + node.cluster.peer_request_timeout)
    assert type(late) is Rejected and late.code is ErrorCode.UNAVAILABLE
    assert "after its deadline" in late.message


@pytest.mark.parametrize("attempt", [0.3, 1.0, 2.0, 2.5, 10.0])
def test_the_wait_follows_the_attempt_within_its_bounds(attempt: float) -> None:
    node, key = pair()
    fwd = node.handle(DeregisterInstance(3, key, IID, deadline=attempt_deadline(2.0, attempt)), 2.0)
    assert type(fwd) is Forward
    expected = min(2.0, max(FORWARD_MIN_WAIT, attempt - FORWARD_MARGIN))
    assert fwd.wait == pytest.approx(expected)


def test_a_write_without_a_deadline_waits_peer_request_timeout() -> None:
    node, key = pair(peer_request_timeout=1.5)
    for req in (
        RegisterInstance(1, key, IID, 1.0, True, {}),
        UpdateInstance(3, key, IID, 2.0, None),
    ):
        fwd = node.handle(req, 1.0)
        assert type(fwd) is Forward and fwd.wait == 1.5, req


@pytest.mark.parametrize("peer_request_timeout", [0.3, 2.0])
def test_a_forwarded_beat_is_answered_within_the_clients_attempt(
    peer_request_timeout: float,
) -> None:
    """A beat carries no deadline: BEAT_FORWARD_WAIT at most (below the client's 1 s
    attempt less the answer's way back), ``peer_request_timeout`` if shorter; then the
    node applies it itself: the beat is answered and counts as evidence here."""
    node, key = pair(peer_request_timeout=peer_request_timeout)
    fwd = node.handle(Beat(2, key, IID), 1.0)
    assert type(fwd) is Forward
    assert fwd.wait == min(BEAT_FORWARD_WAIT, peer_request_timeout)
    assert fwd.wait < ATTEMPT - FORWARD_MARGIN and fwd.copy_deadline is None


def test_a_deadline_already_near_still_gives_the_owner_the_least_wait() -> None:
    """A client clock behind the node's, or the last sliver of a call's budget: the owner
    still gets FORWARD_MIN_WAIT (a LAN round trip takes milliseconds)."""
    node, key = pair()
    req = RegisterInstance(1, key, IID, 1.0, True, {}, deadline=WALL + 4.0 + 0.6)
    fwd = node.handle(req, 4.0)
    assert type(fwd) is Forward and fwd.wait == FORWARD_MIN_WAIT


def test_the_wait_reads_the_nodes_wall_clock() -> None:
    """The deadline is on the client's wall clock; the node compares it with its own (the
    monotonic clock plus its offset), as the deadline check does."""
    node, key = pair()
    req = RegisterInstance(1, key, IID, 1.0, True, {}, deadline=WALL + 100.0 + 1.5)
    early = node.handle(req, 99.5)  # 0.5 s before the client sent it (clocks apart)
    later = node.handle(req, 100.0)
    assert type(early) is Forward and type(later) is Forward
    assert early.wait == pytest.approx(later.wait + 0.5)


def test_each_part_of_a_split_batch_waits_by_the_batchs_deadline() -> None:
    node, key = pair()
    mine = next(
        k
        for k in (ServiceKey("public", "DEFAULT_GROUP", f"m{i}") for i in range(100))
        if responsible_node(k, ("n1", "n2")) == "n1"
    )
    deadline = attempt_deadline(3.0)
    entries = tuple(
        RegisterInstance(9, k, IID, 1.0, True, {}, deadline=deadline) for k in (mine, key)
    )
    split = node.handle(RegisterBatch(9, "public", entries), 3.0)
    assert type(split) is SplitBatch
    ((fwd, indices),) = split.parts
    assert indices == (1,) and fwd.wait == pytest.approx(ATTEMPT - FORWARD_MARGIN)


def test_the_lead_leaves_the_margin_before_the_attempt_ends() -> None:
    assert abs(FORWARD_LEAD - (DEADLINE_SLACK + FORWARD_MARGIN)) < 1e-9
    assert FORWARD_MARGIN > 0 and FORWARD_MIN_WAIT < 1.0 - FORWARD_MARGIN


def test_the_owners_copy_is_void_once_the_forwarder_stops_waiting() -> None:
    """The copy sent to the owner carries the end of the forwarder's wait as its deadline
    (the write's own when earlier); the fallback keeps the client's deadline."""
    node, key = pair()
    now = 5.0
    req = RegisterInstance(7, key, IID, 1.0, True, {}, deadline=attempt_deadline(now, 8.0))
    fwd = node.handle(req, now)
    assert type(fwd) is Forward and fwd.wait == 2.0  # peer_request_timeout bounds it
    assert fwd.copy_deadline == pytest.approx(WALL + now + fwd.wait)
    assert fwd.request == req  # the fallback applies the client's write as it came
    short = node.handle(DeregisterInstance(8, key, IID, deadline=attempt_deadline(now)), now)
    assert type(short) is Forward
    assert short.copy_deadline == pytest.approx(WALL + now + short.wait)
    assert short.copy_deadline < attempt_deadline(now)
    plain = node.handle(RegisterInstance(9, key, IID, 1.0, True, {}), now)
    assert type(plain) is Forward and plain.copy_deadline is None  # none given: none added


def test_an_owner_refuses_a_copy_read_after_the_forwarders_wait() -> None:
    """The owner's side: the copy, with the forwarder's deadline, read after it."""
    forwarder, mine = pair()  # a service n2 is responsible for
    fwd = forwarder.handle(
        RegisterInstance(7, mine, IID, 1.0, True, {}, deadline=attempt_deadline(5.0, 8.0)), 5.0
    )
    assert type(fwd) is Forward and fwd.copy_deadline is not None
    # what n2 reads: the same write with the copy's deadline (runtime: wire.with_deadline)
    copy = RegisterInstance(7, mine, IID, 1.0, True, {}, deadline=fwd.copy_deadline)
    owner = DistroNode(
        HealthPolicy(), ClusterPolicy(), "n2", "10.0.0.2:7800", ["10.0.0.1:7800"], 8, 0.0, WALL
    )
    late = owner.handle(copy, 5.0 + fwd.wait + 0.01, forwarded=True)
    assert type(late) is Rejected and late.code is ErrorCode.UNAVAILABLE
    assert owner.registry.late_writes == 1 and not owner.registry.holds(mine, IID)
    in_time = owner.handle(copy, 5.0 + fwd.wait - 0.01, forwarded=True)
    assert type(in_time) is Reply and in_time.req_id == 7 and type(in_time.result) is Written
