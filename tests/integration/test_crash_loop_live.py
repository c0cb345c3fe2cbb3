"""A peer in a crash loop does not stop the health checks of the other nodes (real processes).

Every member coming back into the view starts a grace period on the other nodes, and each
one used to restart the wait: a node killed and restarted again and again, faster than
``evict_after``, made every other node evict nobody while it looped (docs/DISTRO.md, "A
run of graces is bounded"); and the services it owned itself moved back and forth with a
fresh grace each time, so their dead instances were judged by nobody ("A node that keeps
restarting": it is held out of the members now).  Three nodes; C is SIGKILLed as soon as
A has seen it back (or held), and restarted as soon as A has found it down.  Dead
instances of a service A owns and of one C owns must be evicted while C still loops, and
a live one (beating through B) must stay healthy on A and B all along.
"""

from __future__ import annotations

import time

from conftest import CLUSTER_CHECK_INTERVAL, CLUSTER_EVICT_AFTER, CLUSTER_UNHEALTHY_AFTER
from helpers import NodeProcess, raw_request, service_owned_by, wait_until

from meshreg import Client

FAST = {"beat_interval": 0.3, "timeout": 5.0, "attempt_timeout": 1.0}
LOOP_LIMIT = 40.0  # s: the loop never runs longer (bounded), nor more than MAX_CYCLES
MAX_CYCLES = 20


def _state(observer: NodeProcess, address: str) -> str | None:
    """C's state as ``observer`` sees it: up, catching up (or held out), down."""
    with Client([observer.address], timeout=2.0) as c:
        view = c.cluster()
    return next((m["state"] for m in view["members"] if m["address"] == address), None)


def _listed(node: NodeProcess, service: str) -> dict[str, bool]:
    with Client([node.address], timeout=2.0) as c:
        return {i.address: i.healthy for i in c.instances(service, healthy_only=False)}


def _await_state(observer: NodeProcess, address: str, wanted: tuple[str, ...], what: str) -> None:
    """Poll ``observer``'s view of ``address`` every 0.25 s (a client a poll: 50 a second
    starve a 2-core box) for 30 s (on a loaded machine the observer's own loop may be late
    past its stall threshold, and a stall counts its peers' silence from then: CI once
    took more than 10 s to see C down); fail naming the states seen."""
    seen: list[str | None] = []

    def reached() -> bool:
        seen.append(_state(observer, address))
        return seen[-1] in wanted

    try:
        wait_until(reached, 30, 0.25, what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; states seen, last ones: {seen[-8:]}") from None


def test_a_node_in_a_crash_loop_does_not_stop_evictions_elsewhere(
    start_cluster: object,
) -> None:
    a, b, c = start_cluster(3)  # type: ignore[operator]
    addresses = [a.address, b.address, c.address]
    dead_svc = service_owned_by(a.address, addresses, "looped-dead")
    dead_of_c = service_owned_by(c.address, addresses, "looped-c-dead")
    live_svc = service_owned_by(a.address, addresses, "looped-live")
    # the dead instances: registered and beaten twice through A, then silent for good
    for n, service in enumerate((dead_svc, dead_of_c)):
        where = {"v": 1, "service": service, "ip": "10.8.0.1", "port": 80}
        assert raw_request(a.port, {**where, "id": 1 + 10 * n, "op": "register"})["ok"]
        for i in (2, 3):
            assert raw_request(a.port, {**where, "id": i + 10 * n, "op": "beat"})["ok"]
    died = time.monotonic()
    with Client([b.address], **FAST) as provider:
        provider.register(live_svc, "10.8.0.2", 80)
        wait_until(
            lambda: _listed(a, live_svc) == {"10.8.0.2:80": True},
            timeout=10,
            what="the live instance on A",
        )
        # (start_cluster waits for pings only: C may not have been heard yet)
        _await_state(a, c.address, ("up",), "A to see C up before the loop")
        # the loop: kill C once A sees it up, start it again once A finds it down
        start = time.monotonic()
        evicted_at = None
        cycles = 0
        while time.monotonic() - start < LOOP_LIMIT and cycles < MAX_CYCLES:
            cycles += 1
            c.kill()
            _await_state(a, c.address, ("down",), "A to find C down")
            for node in (a, b):
                assert _listed(node, live_svc) == {"10.8.0.2:80": True}, (node.address, cycles)
            gone = [s for s in (dead_svc, dead_of_c) if "10.8.0.1:80" not in _listed(a, s)]
            if evicted_at is None and len(gone) == 2:
                evicted_at = time.monotonic()
                break
            c.start()
            _await_state(a, c.address, ("up", "catching up"), "A to see C back")
        assert evicted_at is not None, (
            f"the dead instances of {dead_svc} (A's) and {dead_of_c} (C's) were not both "
            f"evicted on A after {cycles} crash cycles of C ({time.monotonic() - died:.1f} s "
            f"after their last beat): listed {_listed(a, dead_svc)}, {_listed(a, dead_of_c)}"
        )
        # evicted within evict_after + unhealthy_after of the loop's start (a check
        # interval and A's detection of the first return aside), not at the loop's end
        bound = CLUSTER_EVICT_AFTER + CLUSTER_UNHEALTHY_AFTER + CLUSTER_CHECK_INTERVAL + 8.0
        assert evicted_at - died <= bound + (start - died), (evicted_at - died, cycles)
        assert cycles >= 2  # C did come back within the run: the bound was what judged
        with Client([a.address]) as admin:
            stats = admin.stats()
        assert stats["peers_held"] == 1, stats  # A held C
