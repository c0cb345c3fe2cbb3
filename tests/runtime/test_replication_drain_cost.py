"""A replicated delta costs a drain by its instances, not one message each (review83 F2:
512 deltas of a mass expiry's thousands of instances were one drain of 1-3 s)."""

from __future__ import annotations

from meshreg.core.cluster_messages import ReplicatedDelta, ServicePayload
from meshreg.model import InstanceId, ServiceKey
from meshreg.runtime.node import BATCH, DELTA_INSTANCES_PER_UNIT, _delta_cost

KEY = ServiceKey("ta", "DEFAULT_GROUP", "flood0")


def delta(removed: int) -> ReplicatedDelta:
    removals = tuple((InstanceId(f"10.0.{i // 250}.{i % 250}", 1, "DEFAULT"), 1, 1)
                     for i in range(removed))  # fmt: skip
    return ReplicatedDelta("n1", 1, 1, ServicePayload(KEY, (), removals))


def test_a_one_instance_delta_costs_one_and_a_big_one_its_share() -> None:
    assert _delta_cost(delta(1)) == 1  # the usual delta: 512 per drain, as before
    big = _delta_cost(delta(5_000))
    assert big == 1 + 5_000 // DELTA_INSTANCES_PER_UNIT
    # a drain holds at most a few thousand instances of such deltas
    assert (BATCH // big + 1) * 5_000 <= 10_000
