"""Service settings (threshold, metadata) converge, even for a service with no instance."""

from __future__ import annotations

import pytest
from network import Network

from meshreg.core.distro import Broadcast
from meshreg.model import ServiceKey
from meshreg.wire.messages import parse_request
from meshreg.wire.peer import ReplicatedDelta
from meshreg.wire.replies import encode_request

KEY = ServiceKey("public", "DEFAULT_GROUP", "empty-svc")
WANTED = (0.4, {"owner": "team-a"})


@pytest.mark.parametrize("seed", range(10))
def test_settings_of_an_empty_service_are_repaired_after_a_lost_delta(seed: int) -> None:
    net = Network(seed, ["a", "b", "c"])
    for n in ("a", "b", "c"):
        net.start(n)
    net.run_until(10.0)  # formed and ready
    owner = net.nodes["a"].core.owner_of(KEY)  # type: ignore[union-attr]
    core = net.nodes[owner].core
    assert core is not None
    body = encode_request(
        "service_set",
        1,
        namespace=KEY.namespace,
        group=KEY.group,
        service=KEY.service,
        protect_threshold=WANTED[0],
        metadata=WANTED[1],
    )
    core.handle(parse_request(body), net.now)
    # the replication delta is lost: only anti-entropy can carry the settings
    core.registry._effects = [
        e
        for e in core.registry._effects
        if not (isinstance(e, Broadcast) and isinstance(e.message, ReplicatedDelta))
    ]
    net.run_until(40.0)
    settings = {
        n.node_id: (n.core.store.service_settings(KEY)[0], n.core.store.service_settings(KEY)[2])
        for n in net.live()
        if n.core is not None
    }
    assert all(v == WANTED for v in settings.values()), f"seed {seed}: {settings}"
