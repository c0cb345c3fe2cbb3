"""review35 F1: a registry write the client re-sent is failed as "not applied" when the
node refuses its FIRST copy as late, while the second copy (through another node) is
applied.

The client sends a write straight to the service's responsible node (half the budget),
then again through its server (PROTOCOL.md 1.8, 2.1 "Deadline"), under the same request
id.  The owner, stopped (SIGSTOP) and resumed between the first copy's deadline and the
end of the forwarder's wait, refuses the first copy as late ("reached node ... after its
deadline ...: not applied (the client has sent it again or given up)") and applies the
forwarded second copy (or the forwarder applies it).  The client takes the refusal as the
call's answer: ``register`` raises ServerError UNAVAILABLE "not applied", unwritten, yet
the instance is registered (and kept alive by the client's session, though the client
does not count it as one of its registrations).

Expected: PROTOCOL.md 2.1 "Deadline": "A write refused for its deadline: send it again
with a fresh deadline, within the call's budget"; an error that says "not applied" only
for a write that is not applied (CHANGELOG Unreleased: "A write failed as 'never left
this client (not applied)' can no longer be applied").
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "review25"))
from helpers import raw_request, service_owned_by, start_all, wait_until
from r25lib import listing, make_nodes, members_up, new_ports

from meshreg.client import Client
from meshreg.errors import MeshregError

TIMINGS = ("--check-interval", "0.2", "--unhealthy-after", "3", "--evict-after", "6",
           "--peer-timeout", "2")  # fmt: skip
# the first copy (straight to the owner) carries call start + 1.0 + 0.5 s; the forwarder
# waits for the owner until the second copy's deadline (start + 2.5 s) less 0.8 s
RESUME_AT = (1.56, 1.6, 1.64, 1.58, 1.62)


def _judging(node) -> str:
    r = raw_request(node.port, {"v": 1, "id": 1, "op": "stats"}, 2.0)
    return str(r.get("result", {}).get("health_judgment", "")) if r.get("ok") else ""


@pytest.mark.timeout(150)
def test_a_write_failed_as_not_applied_is_not_applied(started_nodes, tmp_path: Path) -> None:
    nodes = make_nodes(new_ports(3), TIMINGS, str(tmp_path))
    started_nodes.extend(nodes)
    start_all(nodes)
    wait_until(lambda: members_up(nodes), 30, 0.2, "3 up")
    fwd, owner = nodes[0], nodes[2]
    svc = service_owned_by(owner.address, [n.address for n in nodes], "stale35-")
    client = Client([fwd.address], timeout=2.0, server_order="listed", handle_sigterm=False)
    bad = []
    try:
        client.register(svc, "10.35.9.1", 1)  # the view: writes go straight to the owner
        wait_until(lambda: all("10.35.9.1:1" in (listing(n, svc) or {}) for n in nodes), 10,
                   0.1, "warm-up: on every node")  # fmt: skip
        for i, resume in enumerate(RESUME_AT):
            port = 100 + i
            out: dict[str, object] = {}

            def call(port: int = port, out: dict[str, object] = out) -> None:
                out["t0"] = time.monotonic()
                try:
                    client.register(svc, "10.35.9.1", port)
                    out["r"] = "ok"
                except MeshregError as exc:
                    out["r"] = exc

            owner.signal(signal.SIGSTOP)
            th = threading.Thread(target=call)
            th.start()
            wait_until(lambda out=out: "t0" in out, 2, 0.001, "call started")
            at = float(out["t0"]) + resume  # type: ignore[arg-type]
            wait_until(lambda at=at: time.monotonic() >= at, 5, 0.002, "the resume time")
            owner.signal(signal.SIGCONT)
            th.join(10)
            r = out.get("r")
            if isinstance(r, MeshregError) and "not applied" in str(r):
                # watched until its promise, and some, has passed (the copies all decided)
                until = time.monotonic() + 2.0

                def registered(port: int = port, until: float = until) -> list[str] | bool:
                    where = [n.address for n in nodes
                             if f"10.35.9.1:{port}" in (listing(n, svc, 2.0) or {})]  # fmt: skip
                    return where or time.monotonic() >= until

                where = wait_until(registered, 10, 0.1, "registered, or its promise passed")
                if where is not True:
                    bad.append(f"resumed at +{resume}s: {type(r).__name__}: {str(r)[:200]} "
                               f"-> yet registered on {where}")  # fmt: skip
            # the owner settles (resynced after its stall) before the next round
            wait_until(lambda: members_up(nodes) and _judging(owner) != "resyncing after a "
                       "stall", 10, 0.1, "the owner resynced")  # fmt: skip
        assert not bad, "a register failed as 'not applied' was applied:\n" + "\n".join(bad)
    finally:
        owner.signal(signal.SIGCONT)
        client.close(timeout=2)
