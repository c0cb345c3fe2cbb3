"""review31 (low): ``InstanceList.where("AB")``, the public filter every ``instances()``
list now has, takes a str as a collection of clusters: ``i.cluster in "AB"`` is a substring
test, so instances of clusters "A", "B" and "" match too.  ``Client.instances`` passes
``cluster_set(...)`` and is not affected; a caller narrowing a list it already holds
(``c.instances(s).where("AB")``, as Client.instances' own signature invites) gets the
wrong instances, silently."""

from __future__ import annotations

from meshreg.model import Instance, InstanceList


def test_where_with_one_cluster_name_matches_only_that_cluster() -> None:
    listing = InstanceList(
        [
            Instance("10.0.0.1", 1, cluster="A"),
            Instance("10.0.0.2", 2, cluster="AB"),
            Instance("10.0.0.3", 3, cluster=""),
        ]
    )
    got = sorted(i.cluster for i in listing.where("AB"))
    assert got == ["AB"], f'where("AB") kept clusters {got}'
