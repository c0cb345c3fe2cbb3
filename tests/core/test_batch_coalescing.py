"""A ``register_batch``'s changes are coalesced per service (core/store, "Batches"): one
revision, one notification and one replicated delta per service and batch, showing the
final view of every record written; each entry is still checked and answered on its own
(a quota refusal in the middle of a batch changes nothing and stops nothing)."""

from __future__ import annotations

from typing import Any

from answers import served_map

from meshreg.core.cluster_messages import ReplicatedDelta
from meshreg.core.distro import ClusterPolicy, DistroNode
from meshreg.core.effects import Broadcast, ServiceChanged
from meshreg.core.health import HealthPolicy
from meshreg.core.quotas import LimitsPolicy
from meshreg.core.requests import RegisterBatch, RegisterInstance
from meshreg.errors import ErrorCode
from meshreg.model import InstanceId, ServiceKey

SERVICES = [ServiceKey("public", "DEFAULT_GROUP", f"svc-{i}") for i in range(3)]


def node(limits: LimitsPolicy | None = None) -> DistroNode:
    n = DistroNode(
        HealthPolicy(), ClusterPolicy(), "n1", "127.0.0.1:7800", [], 99, 0.0,
        detect_stalls=False, limits=limits,
    )  # fmt: skip
    n.outbox.peers = True  # publish deltas as a cluster member does
    return n


def entry(i: int, key: ServiceKey, weight: float = 1.0) -> RegisterInstance:
    iid = InstanceId(f"10.0.{i >> 8}.{i & 255}", 8000, "DEFAULT")
    return RegisterInstance(i, key, iid, weight, True, {"zone": "a"}, session="s" * 32)


def split(effects: list[Any]) -> tuple[list[ServiceChanged], list[ReplicatedDelta]]:
    changes = [e for e in effects if type(e) is ServiceChanged]
    deltas = [
        e.message for e in effects if type(e) is Broadcast and type(e.message) is ReplicatedDelta
    ]
    return changes, deltas


def test_a_batch_of_256_for_three_services_makes_three_changes_and_three_deltas() -> None:
    n = node()
    batch = RegisterBatch(1, "public", tuple(entry(i, SERVICES[i % 3]) for i in range(256)))
    answer = served_map(n, batch, 1.0)
    assert answer["results"] == [None] * 256
    assert len(set(answer["stamps"])) == 256  # each entry's own stamp (PROTOCOL.md 2.1a)
    changes, deltas = split(n.take_effects())
    assert sorted(c.key for c in changes) == sorted(SERVICES)
    assert [c.base for c in changes] == [0, 0, 0]
    assert sorted(c.revision for c in changes) == [1, 2, 3] and n.store.revision == 3
    assert sorted(len(c.upserted) for c in changes) == [85, 85, 86]
    assert [d.seq for d in deltas] == [1, 2, 3]
    assert sum(len(d.payload.upserts) for d in deltas) == 256
    assert n.store.sessions.instance_count == 256

    # a second batch: each service moves by one revision from where it was, and an
    # instance written twice in it is shown once, as it is after the batch
    again = [entry(0, SERVICES[0], 2.0), entry(300, SERVICES[0]), entry(0, SERVICES[0], 3.0)]
    assert served_map(n, RegisterBatch(2, "public", tuple(again)), 2.0)["results"] == [None] * 3
    changes, deltas = split(n.take_effects())
    before = n.store.get(SERVICES[0])
    assert before is not None
    [change] = changes
    assert (change.key, change.revision, change.reason) == (SERVICES[0], 4, "registered")
    assert change.base in (1, 2, 3)
    assert [(v.ip, v.weight) for v in change.upserted] == [("10.0.0.0", 3.0), ("10.0.1.44", 1.0)]
    assert len(deltas) == 1 and deltas[0].payload.upserts == change.upserted


def test_an_entry_refused_by_a_quota_changes_nothing_and_the_others_still_apply() -> None:
    n = node(LimitsPolicy(max_instances_per_service=2))
    entries = [entry(1, SERVICES[0]), entry(2, SERVICES[0]), entry(3, SERVICES[0])]
    entries.append(entry(4, SERVICES[1]))
    result = served_map(n, RegisterBatch(1, "public", tuple(entries)), 1.0)["results"]
    assert result[:2] == [None, None] and result[3] is None
    assert result[2][0] == int(ErrorCode.RESOURCE_EXHAUSTED)
    changes, _ = split(n.take_effects())
    assert {c.key: len(c.upserted) for c in changes} == {SERVICES[0]: 2, SERVICES[1]: 1}
    assert not n.store.holds(SERVICES[0], entries[2].instance)
    # a batch whose every entry is refused changes nothing, not even a revision
    revision = n.store.revision
    result = served_map(n, RegisterBatch(2, "public", (entry(5, SERVICES[0]),)), 2.0)["results"]
    assert result[0][0] == int(ErrorCode.RESOURCE_EXHAUSTED)
    assert split(n.take_effects()) == ([], []) and n.store.revision == revision


def test_a_batch_that_changes_nothing_publishes_nothing() -> None:
    n = node()
    batch = RegisterBatch(1, "public", tuple(entry(i, SERVICES[0]) for i in range(4)))
    served_map(n, batch, 1.0)
    n.take_effects()
    revision = n.store.revision
    served_map(n, batch, 2.0)  # the same instances again: only their beats are refreshed
    assert split(n.take_effects()) == ([], []) and n.store.revision == revision
