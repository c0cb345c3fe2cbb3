"""F3 (review74): a register that repeats what a node still holds (same fields, healthy)
is not stamped at all: ``RegistryNode.apply`` observes its ``after`` and answers
``Written(rec.version)``, the record's *old* version (core/registry.py, "a repeat: as it
was"; core/store.py ``register`` returns without ``_written`` when ``rec.healthy and
same``), below the ``after`` it carried.  PROTOCOL.md 2.1 "After" (and, since this
change, 2.1a for each ``register_batch`` entry) promises the write "is stamped above it
whatever the clocks say": it is not stamped, and nothing replicates (no change).

Scenario (seeded simulation, 3 nodes, no clock skew, owner n1): instance 4 registered
through n1 and replicated; n1's deltas to n2 run late and n2's forwards to n1 are lost
(the peer request port between them down both ways); the caller deregisters through n1 (stamp
D) and registers the instance again at once through n2 with ``after`` D (as the Python
client now sends it, also as a ``register_batch`` entry).  n2 applies it itself
(``_batch_fallback`` / fallback): it still holds the record (D not merged yet), a repeat:
answered OK with the old stamp (< D).  D's delta then reaches n2 and removes the
instance; n1 never got the register: the acknowledged registration, the caller's last
word, is listed by no node until the next beat's NOT_FOUND / short renewals.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from r74lib import (  # noqa: E402
    Faults,
    cluster,
    deadline_ms,
    held,
    owned_by,
    register_fields,
    request,
    run_until_true,
    scenario_message,
)

from meshreg.transport.memory import MemDealer  # noqa: E402

ATTEMPT = 1.0


@pytest.mark.parametrize("op", ["register_batch", "register"])
def test_r74_a_repeat_register_with_after_is_not_stamped_above_it(op: str) -> None:
    net = cluster(7401, {})
    net.run_until(8.0)
    service = owned_by(net, "n1")[0]
    first = request(
        net, net.nodes["n1"], "register", **register_fields(service, 4),
        deadline=deadline_ms(net, ATTEMPT),
    )  # fmt: skip
    run_until_true(net, lambda: bool(first), net.now + 2.0)
    assert first[0][0] == "ok", first
    net.run_until(net.now + 1.0)  # replicated
    assert held(net, "n2", service, 4), "setup: n2 holds the registration"
    faults = Faults(net)
    faults.late_deltas[("n1", "n2")] = 3.0  # n1's deltas to n2 held back (a backed-up PUB)
    inner = faults.drop

    def link_down(src: Any, dst: Any, frames: list[bytes]) -> bool:
        # the peer request port between n1 and n2 down both ways: n2's forwards (and its
        # repair requests) to n1 are lost, n2 applies the write itself
        if type(src) is MemDealer and {src.name, dst.name} == {"n1", "n2"}:
            return True
        return inner(src, dst, frames)

    net.drop = link_down
    dereg = {**register_fields(service, 4), "deadline": deadline_ms(net, ATTEMPT)}
    dereg.pop("weight")
    dereg["after"] = first[0][1]["stamp"]
    gone = request(net, net.nodes["n1"], "deregister", **dereg)
    run_until_true(net, lambda: bool(gone), net.now + 2.0)
    assert gone[0][0] == "ok", gone
    d_stamp = gone[0][1]["stamp"]
    if op == "register":
        again = request(
            net, net.nodes["n2"], "register", **register_fields(service, 4),
            deadline=deadline_ms(net, ATTEMPT), after=d_stamp,
        )  # fmt: skip
    else:
        entry = register_fields(service, 4)
        for k in ("namespace", "group"):
            entry.pop(k)
        entry["after"] = d_stamp
        again = request(
            net, net.nodes["n2"], "register_batch", namespace="public", group="DEFAULT_GROUP",
            instances=[entry], deadline=deadline_ms(net, ATTEMPT),
        )  # fmt: skip
    run_until_true(net, lambda: bool(again), net.now + 2.0)
    status, result = again[0]
    assert status == "ok", again
    told = result["stamp"] if op == "register" else result["stamps"][0]
    if op == "register_batch":
        assert result["results"] == [None], result
    problems = []
    if told is None or told <= d_stamp:
        problems.append(
            f"the register carried after={d_stamp} (the deregistration's stamp) and was "
            f"answered stamp={told}: not above it"
        )
    net.drop = inner
    faults.late_deltas.clear()
    net.run_until(net.now + 3.0)
    if not any(held(net, n, service, 4) for n in net.nodes):
        problems.append(
            "instance 4, registered (acknowledged) after its deregistration, is listed by no node"
        )
    assert not problems, scenario_message(net, f"repeat {op} with after", problems)
