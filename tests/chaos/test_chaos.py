"""Multi-host fault suite: real nodes in three network namespaces (see docs/CHAOS.md).

Runs inside the normal ``pytest`` when root and iproute2 are present (select it alone with
``pytest -m chaos``); skipped with the reason otherwise. Each test runs one scenario of
scenarios.py on a fresh lab and fails with the scenario, seed, timeline and node log tails.
``MESHREG_CHAOS_SEED`` fixes the seed of every scenario (to replay one).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import netlab
import pytest
from netlab import iptables_command
from scenarios import Settings, run_scenario

_REASON = netlab.unavailable_reason()

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.skipif(_REASON is not None, reason=_REASON or ""),
]


@pytest.fixture(scope="module", autouse=True)
def _stale_namespaces() -> Iterator[None]:
    netlab.sweep_stale()  # namespaces left by an earlier run that was killed
    yield


def _seed() -> int | None:
    value = os.environ.get("MESHREG_CHAOS_SEED")
    return int(value) if value else None


def check(name: str) -> None:
    res = run_scenario(name, _seed(), Settings.for_scenario(name))
    print(
        f"{name} seed {res.seed}: converge {res.converge_text()}; bad samples "
        f"{res.bad_samples}; reappeared {res.reappeared}; minority {res.minority}"
    )
    if not res.ok:
        pytest.fail(f"{len(res.violations)} violations\n{res.report}", pytrace=False)


@pytest.mark.timeout(90)
def test_kill_and_restart_one_node() -> None:
    check("kill")


@pytest.mark.timeout(120)
def test_kill_and_restart_one_node_on_ipv6() -> None:
    check("kill-ipv6")


@pytest.mark.timeout(150)
def test_rolling_restart() -> None:
    check("rolling-restart")


@pytest.mark.timeout(90)
def test_provider_death() -> None:
    check("provider-death")


@pytest.mark.timeout(90)
def test_pause_longer_than_evict_after() -> None:
    check("pause")


@pytest.mark.timeout(90)
def test_partition_longer_than_evict_after() -> None:
    check("partition")


@pytest.mark.timeout(90)
def test_deregister_on_majority_during_short_partition() -> None:
    check("dereg-partition")


@pytest.mark.timeout(100)
@pytest.mark.skipif(
    netlab.impair_unavailable_reason() is not None,
    reason=netlab.impair_unavailable_reason() or "",
)
def test_loss_and_delay() -> None:
    check("loss-delay")


@pytest.mark.timeout(100)
@pytest.mark.skipif(iptables_command() is None, reason="one-way faults need iptables")
def test_replication_port_dropped_one_way() -> None:
    check("oneway-port")


@pytest.mark.timeout(100)
@pytest.mark.skipif(iptables_command() is None, reason="one-way faults need iptables")
def test_replication_port_closed_to_every_peer() -> None:
    check("pub-blocked")


@pytest.mark.timeout(100)
@pytest.mark.skipif(iptables_command() is None, reason="the cuts need iptables")
def test_crossing_cuts_nobody_hears_everyone() -> None:
    check("crossing-cuts")


@pytest.mark.timeout(110)
@pytest.mark.skipif(iptables_command() is None, reason="the cuts need iptables")
def test_five_nodes_four_cuts_a_node_three_hops_from_another() -> None:
    check("five-cuts")


@pytest.mark.timeout(120)
def test_no_majority_anywhere_evicts_nothing_it_cannot_hear() -> None:
    check("no-majority")


@pytest.mark.timeout(120)
def test_config_partition_minority_refuses_writes() -> None:
    check("config-partition")


@pytest.mark.timeout(120)
def test_config_owner_paused_then_node_killed_after_ack() -> None:
    check("config-pause-kill")


@pytest.mark.timeout(120)
@pytest.mark.skipif(
    netlab.impair_unavailable_reason() is not None,
    reason=netlab.impair_unavailable_reason() or "",
)
def test_config_writes_under_loss_and_delay() -> None:
    check("config-loss")
