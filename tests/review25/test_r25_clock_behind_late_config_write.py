"""review25 F1: a config owner whose wall clock is BEHIND its clients' and peers' (8 s,
an ordinary member: DISTRO.md "Clock skew": "Smaller offsets are not fenced") applies a
write that waited out its stall in its socket long after the write's deadline, on top of
the acknowledged write another client made meanwhile: review19 F1 comes back.

Deadlines are judged by the receiving node's wall clock (``now + wall_offset -
clock_lead``); review22 added ``clock_lead`` for a node *ahead* of its peers, and nothing
for one behind, so every deadline is 8 s longer on it.

Expected (CHANGELOG, review19 F1: "a node refuses a write past it (UNAVAILABLE,
written: false, stats.config.late_writes)"; the client's error says until when the write
may still appear): once that time has passed, the write never appears.
Actual: the owner 8 s behind applies it when it resumes (6 s after the client gave up):
the data id goes to the void content, over the other operator's acknowledged write.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest
from helpers import raw_request, start_all, wait_until
from r25lib import make_nodes, members_up, new_ports

from meshreg import Client
from meshreg.configcenter.model import ConfigKey
from meshreg.configcenter.replication import responsible_config_node
from meshreg.core.requests import DEADLINE_SLACK
from meshreg.errors import OutcomeUnknownError

BEHIND = -8.0
TIMINGS = ("--check-interval", "0.2", "--unhealthy-after", "3", "--evict-after", "6",
           "--peer-timeout", "1.0")  # fmt: skip


def _owned_by(owner: str, members: list[str]) -> str:
    for i in range(1000):
        did = f"late25-{i}.yaml"
        if responsible_config_node(ConfigKey("public", "DEFAULT_GROUP", did), members) == owner:
            return did
    raise AssertionError("no data id maps to the owner")


def _sees_down(node, other) -> bool:
    r = raw_request(node.port, {"v": 1, "id": 1, "op": "cluster"}, 3.0)
    members = r["result"]["members"] if r.get("ok") else []
    return any(m.get("address") == other.address and m.get("state") != "up" for m in members)


def _config_ready(node) -> bool:
    r = raw_request(node.port, {"v": 1, "id": 1, "op": "stats"}, 2.0)
    cfg = r.get("result", {}).get("config", {}) if r.get("ok") else {}
    return bool(cfg.get("ready")) and cfg.get("members_up") == 3


@pytest.mark.timeout(120)
def test_void_config_write_never_appears_on_an_owner_whose_clock_is_behind(
    started_nodes, tmp_path: Path
) -> None:
    nodes = make_nodes(new_ports(3), TIMINGS, str(tmp_path), skews={2: BEHIND})
    started_nodes.extend(nodes)
    start_all(nodes)
    a, b, c = nodes
    wait_until(lambda: members_up(nodes), 20, 0.2, "3 members up")
    wait_until(lambda: all(_config_ready(n) for n in nodes), 20, 0.2, "configs ready")
    did = _owned_by(c.address, [n.address for n in nodes])
    ops = Client([a.address], timeout=5)
    writer = Client([c.address], timeout=4)
    try:
        ops.config_publish(did, "init")
        wait_until(lambda: writer.config_get(did) is not None, 10, 0.1, "the writer reads it")
        c.signal(signal.SIGSTOP)
        outcome: dict[str, object] = {}

        def write_a() -> None:
            try:
                outcome["a"] = writer.config_publish(did, "A: the write that timed out")
            except OutcomeUnknownError as exc:
                outcome["a"] = exc
            outcome["gave_up"] = time.monotonic()

        t = threading.Thread(target=write_a)
        t.start()
        t.join(15)
        assert isinstance(outcome.get("a"), OutcomeUnknownError), outcome
        wait_until(lambda: _sees_down(a, c) and _sees_down(b, c), 10, 0.1, "c down on a, b")
        acked = ops.config_publish(did, "B: another operator")  # acknowledged by a, b
        void_at = float(outcome["gave_up"]) + DEADLINE_SLACK + 0.2  # type: ignore[arg-type]
        wait_until(lambda: time.monotonic() >= void_at, 5, 0.05, "the write is void")
        resumed = time.monotonic()
        c.signal(signal.SIGCONT)
        wait_until(lambda: raw_request(c.port, {"v": 1, "id": 1, "op": "ping"}, 1.0).get("ok"),
                   10, 0.05, "c answers again")  # fmt: skip

        def history() -> list[tuple[int, str, bool]]:
            return [(h.revision, h.content, h.deleted) for h in ops.config_history(did)]

        def settled() -> bool:
            made = history()
            if any(m[1].startswith("A:") for m in made):
                raise AssertionError(
                    f"the write that ended 'outcome unknown' {resumed - float(outcome['gave_up']):.1f} s "  # type: ignore[arg-type]  # noqa: E501
                    f"before c (its owner, clock {-BEHIND:g} s behind) resumed, past its last "
                    f"deadline, was applied on top of the acknowledged revision "
                    f"{acked.revision}: history {made}"
                )
            r = raw_request(c.port, {"v": 1, "id": 1, "op": "stats"}, 2.0)
            late = r.get("result", {}).get("config", {}).get("late_writes", 0) if r.get("ok") else 0
            return late >= 1 and made[0][1] == "B: another operator"

        wait_until(settled, 15, 0.1, "c refuses the late write")
    finally:
        c.signal(signal.SIGCONT)
        writer.close()
        ops.close()
