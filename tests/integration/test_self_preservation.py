"""Self-preservation on a real node: a mass expiry evicts nothing, and the mode ends by itself.

Providers are played with raw requests: ten instances register and beat, then every beat
stops at once (as if the node's network had failed), without a deregister.
Time is measured by the node's own uptime (``stats``), never by sleeping.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from conftest import FAST_TIMINGS
from helpers import NodeProcess, raw_request, wait_until

EVICT_AFTER = 1.2  # s, from FAST_TIMINGS (check 0.1 s, unhealthy 0.6 s, evict 1.2 s)
PROVIDERS = [f"10.7.0.{i + 1}" for i in range(10)]


def call(node: NodeProcess, op: str, **fields: Any) -> dict[str, Any]:
    return raw_request(node.port, {"v": 1, "id": 1, "op": op, **fields})


def stats(node: NodeProcess) -> dict[str, Any]:
    result: dict[str, Any] = call(node, "stats")["result"]
    return result


def listed(node: NodeProcess) -> dict[str, bool]:
    """ip -> healthy, for every instance of the service (healthy or not)."""
    reply = call(node, "instances", service="orders", healthy_only=False)
    return {i["ip"]: i["healthy"] for i in reply["result"]["instances"]}


def register_all(node: NodeProcess) -> None:
    """Register every provider, and beat each once: providers that had a beat stream
    (a registration never followed by a beat is junk to self-preservation, M3)."""
    for ip in PROVIDERS:
        assert call(node, "register", service="orders", ip=ip, port=8080)["ok"]
    beat_all(node)


def beat_all(node: NodeProcess) -> None:
    for ip in PROVIDERS:
        reply = call(node, "beat", service="orders", ip=ip, port=8080)
        assert reply["ok"], f"beat for {ip}: {reply}"  # NOT_FOUND would mean it was evicted


def wait_uptime(node: NodeProcess, until: float, also: Callable[[], None] | None = None) -> None:
    def due() -> bool:
        if also is not None:
            also()
        return bool(stats(node)["uptime"] >= until)

    wait_until(due, timeout=until + 20.0, interval=0.1, what=f"node uptime {until:.1f}s")


def test_mass_expiry_triggers_self_preservation_and_evicts_nothing(
    start_node: Callable[..., NodeProcess],
) -> None:
    node = start_node(*FAST_TIMINGS, "--self-preservation-min", "5")
    register_all(node)
    assert listed(node) == dict.fromkeys(PROVIDERS, True)

    # every beat stops at once: no deregister, nothing more from any provider
    # The beats were sent one after another, so the mode may turn on when 9 of 10 are
    # silent (more than 85%), one sweep before the last one is: wait for all ten.
    def all_silent() -> dict[str, Any] | None:
        sp: dict[str, Any] = stats(node)["self_preservation"]
        return sp if sp["active"] and sp["silent"] == 10 else None

    sp = wait_until(all_silent, timeout=15.0, what="self-preservation on, all ten silent")
    assert (sp["silent"], sp["of"], sp["min_instances"], sp["threshold"]) == (10, 10, 5, 0.85)
    s = stats(node)
    entered = s["uptime"] - s["self_preservation"]["active_for"]
    wait_uptime(node, entered + 3 * EVICT_AFTER)  # three eviction spans later

    assert listed(node) == dict.fromkeys(PROVIDERS, False)  # all there, all unhealthy
    s = stats(node)
    assert s["instances"] == {"total": 10, "healthy": 0, "unhealthy": 10}
    sp = s["self_preservation"]
    assert sp["active"] is True and sp["evicting"] is False and sp["held"] == 10
    assert sp["times_entered"] == 1
    log = node.log()
    # logged when the mode turned on: at 9 or 10 of the 10 silent (see above)
    assert "WARNING" in log and re.search(r"SELF-PRESERVATION ON: (9|10) of the 10 instances", log)
    assert ": evicted " not in log  # the node logs every eviction as "<service>: evicted ..."

    # the network is back: beats resume, the mode ends by itself, nothing was lost
    wait_until(
        lambda: beat_all(node) or not stats(node)["self_preservation"]["active"],
        timeout=15.0,
        interval=0.1,
        what="self-preservation to turn off",
    )
    left = stats(node)["uptime"]
    wait_uptime(node, left + 2 * EVICT_AFTER, also=lambda: beat_all(node))  # grace + span
    assert listed(node) == dict.fromkeys(PROVIDERS, True)
    sp = stats(node)["self_preservation"]
    assert sp["active"] is False and sp["evicting"] is True and sp["times_entered"] == 1
    assert "self-preservation off after" in node.log()


def test_without_self_preservation_a_mass_expiry_is_evicted(
    start_node: Callable[..., NodeProcess],
) -> None:
    node = start_node(*FAST_TIMINGS, "--self-preservation-min", "5", "--no-self-preservation")
    register_all(node)
    wait_until(lambda: listed(node) == {}, timeout=15.0, what="all ten to be evicted")
    sp = stats(node)["self_preservation"]
    assert sp["enabled"] is False and sp["times_entered"] == 0
    assert "SELF-PRESERVATION" not in node.log()
