"""review19: a config write that reached a stopped owner (SIGSTOP: a GC pause, a frozen
VM) and ended "outcome unknown" for its client is applied when the owner resumes AFTER
the same client's next write of the data id, which the same owner had acknowledged: the
data id ends on the older content, and the client's acknowledged write is undone (a late
delete: the config the client has just published is gone).

How (from reading ``ConfigReplicator.write``): the resumed owner holds both writes for a
catch-up ("a write that waited here while this node was away"), but in separate rounds keyed by
(data id, request id), so the later write's round may finish first; nothing stops the
earlier write either (config writes carry no deadline).

Expected: PROTOCOL.md 2.1 "Deadline" names exactly this hazard for registry writes ("a
write can wait, unanswered, in a stopped node's socket ... applied late ... it would undo
the client's later writes") and guards against it; PROTOCOL.md 2.15's timing contract has
the owner answer "within 2 s of receiving it", so that "a client never abandons a node
that is still working on its write". A client that gave up on write A, then wrote C and
was told "revision N" must not find A's content at N+1 a moment later, written by
nobody after C. (Seen 5 of 5 runs by hand on a 3-node cluster, 2026-12-03.)
"""

from __future__ import annotations

import signal
import threading
import time

import pytest
from helpers import raw_request, wait_until

from meshreg import Client
from meshreg.configcenter.model import ConfigKey
from meshreg.configcenter.replication import responsible_config_node
from meshreg.core.requests import DEADLINE_SLACK
from meshreg.errors import OutcomeUnknownError


def _owned_by(owner: str, members: list[str]) -> str:
    for i in range(1000):
        did = f"late{i}.yaml"
        if responsible_config_node(ConfigKey("public", "DEFAULT_GROUP", did), members) == owner:
            return did
    raise AssertionError("no data id maps to the owner")


def _sees_down(node, other) -> bool:
    r = raw_request(node.port, {"v": 1, "id": 1, "op": "cluster"}, 3.0)
    members = r["result"]["members"] if r.get("ok") else []
    return any(m.get("address") == other.address and m.get("state") != "up" for m in members)


@pytest.mark.parametrize("resume", ["within-deadline", "after-deadline"])
@pytest.mark.parametrize("late_op", ["publish", "delete"])
def test_late_write_on_resumed_owner_does_not_undo_a_later_acknowledged_write(
    start_cluster, late_op: str, resume: str
) -> None:
    """``within-deadline``: c resumes while the timed-out write's last attempt may still be
    applied (its client was told: until ``DEADLINE_SLACK`` after the error): it may land,
    but before the writer's next write, never on top of it.  ``after-deadline``: c resumes
    after that: the write is refused (late) and never appears."""
    nodes = start_cluster(3)
    a, b, c = nodes
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
                if late_op == "publish":
                    outcome["a"] = writer.config_publish(did, "A: the write that timed out")
                else:  # a delete that timed out: applied late, it deletes C
                    outcome["a"] = writer.config_delete(did)
            except OutcomeUnknownError as exc:
                outcome["a"] = exc
            outcome["gave_up"] = time.monotonic()

        t = threading.Thread(target=write_a)
        t.start()
        t.join(15)
        assert isinstance(outcome.get("a"), OutcomeUnknownError), outcome
        # the others take the data id over; someone else writes meanwhile
        wait_until(lambda: _sees_down(a, c) and _sees_down(b, c), 10, 0.1, "c down on a, b")
        ops.config_publish(did, "B: another operator")
        if resume == "after-deadline":  # the stop lasts past the write's last deadline
            void_at = float(outcome["gave_up"]) + DEADLINE_SLACK + 0.2  # type: ignore[arg-type]
            wait_until(lambda: time.monotonic() >= void_at, 5, 0.05, "the write is void")
        c.signal(signal.SIGCONT)
        # the writer goes on as soon as the owner answers again (what waited in its socket,
        # the timed-out write among it, was read before this)
        wait_until(lambda: raw_request(c.port, {"v": 1, "id": 1, "op": "ping"}, 1.0).get("ok"),
                   10, 0.05, "c answers again")  # fmt: skip
        later = writer.config_publish(did, "C: the writer's next write")
        assert later.content == "C: the writer's next write"

        def current(node) -> tuple[int, str]:
            with Client([node.address], timeout=3) as r:
                e = r.config_get(did)
                return (e.revision, e.content) if e is not None else (0, "A: deleted")

        def late_refused() -> int:
            r = raw_request(c.port, {"v": 1, "id": 1, "op": "stats"}, 3.0)
            return int(r["result"]["config"].get("late_writes", 0)) if r.get("ok") else 0

        def history() -> list[tuple[int, str, bool]]:
            return [(h.revision, h.content, h.deleted) for h in ops.config_history(did)]

        # what happens next is only the cluster's own work: nobody writes any more. Watch
        # until every node shows the writer's write (and, after the deadline, c refused the
        # late write), or until the late write shows up where it must not (the defect)
        want = (later.revision, "C: the writer's next write")

        def settled() -> bool:
            seen = [current(n) for n in (a, b, c)]
            if any(content.startswith("A:") for _, content in seen):
                raise AssertionError(
                    f"the write that ended 'outcome unknown' was applied after the writer's "
                    f"next write (acknowledged at revision {later.revision}), undoing it: "
                    f"now {seen}; history {history()}"
                )
            made = history()
            if resume == "after-deadline" and any(m[1].startswith("A:") or m[2] for m in made):
                raise AssertionError(
                    f"the write that ended 'outcome unknown' was applied after its last "
                    f"deadline (c was stopped throughout its attempts and resumed after): "
                    f"history {made}"
                )
            refused = resume == "within-deadline" or late_refused() >= 1
            return refused and all(s == want for s in seen)

        wait_until(settled, 15, 0.1, "every node on the writer's write")
        made = history()
        assert made[0][:2] == want, made
        if resume == "after-deadline":
            expected = [("C: the writer's next write", False), ("B: another operator", False),
                        ("init", False)]  # fmt: skip
            assert [(m[1], m[2]) for m in made] == expected, made
    finally:
        c.signal(signal.SIGCONT)
        writer.close()
        ops.close()
