"""Selection: healthy, enabled, weighted at random; statistical checks with fixed seeds."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from meshreg.client.selection import choose, eligible
from meshreg.errors import InvalidArgumentError
from meshreg.model import Instance, InstanceList


def inst(port: int, weight: float = 1.0, **kw: object) -> Instance:
    return Instance("10.0.0.1", port, weight=weight, **kw)  # type: ignore[arg-type]


def test_eligible_drops_unhealthy_disabled_zero_weight_and_other_clusters() -> None:
    xs = [
        inst(1),
        inst(2, healthy=False),
        inst(3, enabled=False),
        inst(4, weight=0.0),
        Instance("10.0.0.1", 5, cluster="B"),
    ]
    assert [i.port for i in eligible(xs)] == [1, 5]
    assert [i.port for i in eligible(xs, cluster="B")] == [5]


def test_eligible_takes_several_clusters_and_metadata_pairs() -> None:
    """review24 note: only one ``cluster=`` and no metadata filter (Nacos's
    ``selectInstances(service, clusters, ...)`` takes a list)."""
    xs = [
        Instance("10.0.0.1", 1, cluster="A", metadata={"zone": "a", "v": "2"}),
        Instance("10.0.0.1", 2, cluster="B", metadata={"zone": "b", "v": "2"}),
        Instance("10.0.0.1", 3, cluster="C", metadata={"zone": "a"}),
        Instance("10.0.0.1", 4, cluster="A", metadata={"zone": "a", "v": "2"}, healthy=False),
    ]
    assert [i.port for i in eligible(xs, ["A", "B"])] == [1, 2]
    assert [i.port for i in eligible(xs, ("C",))] == [3]
    assert [i.port for i in eligible(xs, metadata={"zone": "a"})] == [1, 3]
    assert [i.port for i in eligible(xs, metadata={"zone": "a", "v": "2"})] == [1]
    assert [i.port for i in eligible(xs, "A", metadata={"v": "2"})] == [1]
    assert [i.port for i in eligible(xs, "A", True, {"v": "2"})] == [1, 4]  # protected
    assert [i.port for i in eligible(xs, [])] == [1, 2, 3]  # none named: any (as Nacos)
    with pytest.raises(InvalidArgumentError, match="cluster names are strings"):
        eligible(xs, [b"A"])  # type: ignore[list-item]


def test_an_instance_list_filtered_keeps_its_revision_and_flags() -> None:
    listing = InstanceList(
        [
            Instance("10.0.0.1", 1, cluster="A", metadata={"zone": "a"}),
            Instance("10.0.0.1", 2, cluster="B", metadata={"zone": "b"}),
        ],
        revision=7,
        epoch=3,
        protected=True,
        service_metadata={"owner": "team-x"},
    )
    only_b = listing.where(frozenset({"B"}))
    assert [i.port for i in only_b] == [2]
    assert (only_b.revision, only_b.epoch, only_b.protected) == (7, 3, True)
    assert only_b.service_metadata == {"owner": "team-x"}
    assert [i.port for i in listing.where(None, {"zone": "a"})] == [1]
    assert [i.port for i in listing.where(None, {"zone": "c"})] == []
    assert [i.port for i in listing.where("A")] == [1]  # one name, not its characters
    assert [i.port for i in listing.where([])] == [1, 2]  # none named: any
    assert len(listing) == 2  # a filtered copy; the list itself unchanged


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_choice_is_proportional_to_weight(seed: int) -> None:
    rng = random.Random(seed)
    xs = [inst(1, 1.0), inst(2, 3.0), inst(3, 6.0)]
    n = 20_000
    counts = Counter(choose(xs, rng).port for _ in range(n))  # type: ignore[union-attr]
    for port, share in ((1, 0.1), (2, 0.3), (3, 0.6)):
        # 5 standard deviations of a binomial: fails only if the choice is biased
        sd = (n * share * (1 - share)) ** 0.5
        assert abs(counts[port] - n * share) < 5 * sd, counts


def test_zero_weight_is_never_chosen_and_nothing_gives_none() -> None:
    rng = random.Random(7)
    xs = [inst(1, 0.0), inst(2, 1.0)]
    assert {choose(xs, rng).port for _ in range(2000)} == {2}  # type: ignore[union-attr]
    assert choose([inst(1, 0.0)], rng) is None
    assert choose([], rng) is None


def test_avoided_instances_are_used_only_when_nothing_else_is_left() -> None:
    rng = random.Random(3)
    xs = [inst(1), inst(2)]
    avoid = {"10.0.0.1:1"}
    assert {choose(xs, rng, avoid).port for _ in range(500)} == {2}  # type: ignore[union-attr]
    assert choose([inst(1)], rng, avoid).port == 1  # type: ignore[union-attr]


def test_protection_lets_unhealthy_instances_take_their_share() -> None:
    from meshreg.model import protection_active

    assert protection_active(1, 3, 0.5) and not protection_active(2, 3, 0.5)
    assert not protection_active(0, 3, 0.0)  # 0 is off
    xs = [inst(1), inst(2, healthy=False), inst(3, healthy=False)]
    assert [i.port for i in eligible(xs)] == [1]
    assert [i.port for i in eligible(xs, protected=True)] == [1, 2, 3]
    rng = random.Random(11)
    n = 9000
    counts = Counter(choose(eligible(xs, protected=True), rng).port for _ in range(n))  # type: ignore[union-attr]
    for port in (1, 2, 3):
        assert abs(counts[port] - n / 3) < 5 * (n * (1 / 3) * (2 / 3)) ** 0.5, counts
