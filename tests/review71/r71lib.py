"""Helpers for review71's tests: the seeded simulation of tests/sim (real node runtimes
on the in-memory transport, a simulated clock), a few small steps on top of it."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
SIM = os.path.join(os.path.dirname(HERE), "sim")
if SIM not in sys.path:
    sys.path.insert(0, SIM)

from network import Network, SimNode  # noqa: E402
from test_distro_sim import scenario_message, start_cluster  # noqa: E402
from test_runtime_sim import WHERE, listed, owned_by, register_fields, request  # noqa: E402

from meshreg.configcenter.model import ConfigKey  # noqa: E402
from meshreg.core.requests import DEADLINE_SLACK  # noqa: E402
from meshreg.wire.replies import decode_reply, encode_request  # noqa: E402

__all__ = [
    "WHERE", "Network", "SimNode", "config_owner", "deadline_ms", "listed", "owned_by",
    "raw_request", "register_fields", "request", "run_until_true", "scenario_message",
    "start_cluster", "runtime",
]


def runtime(net: Network, node_id: str) -> Any:
    rt = net.nodes[node_id].runtime
    assert rt is not None, f"{node_id} is down"
    return rt


def deadline_ms(net: Network, attempt: float) -> int:
    """An attempt's deadline as the Python client stamps it (no skew in these runs)."""
    return round((net.now + attempt + DEADLINE_SLACK) * 1000)


def config_owner(net: Network, key: ConfigKey) -> str:
    """The node id of the data id's responsible node, as every node sees it."""
    owners = set()
    for node_id in net.nodes:
        member = runtime(net, node_id).configs.replicator.responsible(key)
        owners.add(next(n.node_id for n in net.nodes.values() if n.address == member))
    assert len(owners) == 1, owners
    return owners.pop()


def run_until_true(
    net: Network, cond: Callable[[], bool], limit: float, step: float = 0.0002
) -> None:
    """Advance the simulated clock in small steps until ``cond()`` (or fail at ``limit``)."""
    while not cond():
        assert net.now < limit, "condition never held"
        net.run_until(net.now + step)


def raw_request(net: Network, node: SimNode, op: str, **fields: Any) -> list[dict[str, Any]]:
    """A request on a new client connection; the list gets the decoded reply (whole,
    with ``error.message`` and ``error.written``)."""
    out: list[dict[str, Any]] = []
    client = net.client(node.address, lambda frames: out.append(decode_reply(frames[-1])))
    client.send_multipart([b"", encode_request(op, next(net.req_ids), **fields)])
    return out
