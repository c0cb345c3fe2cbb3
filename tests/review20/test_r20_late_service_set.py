"""review20 F2: a `service_set` (Client.set_service, `meshreg service-set`) whose first
attempt waited in a stopped node's socket is applied when that node resumes, with a fresh
stamp, and undoes a later `service_set` of the same operator on every node (and in every
node's registry-state.sqlite3): a lost update of exactly what README calls "what operators
set", which providers cannot give back.

README ("The Python client"): "A registry write (`register`, `deregister`, `set_instance`,
`set_service`) that no node answers in time raises `OutcomeUnknownError` ... and, with
deadlines, that no node applies it more than 0.5 s after the error"; "every request the
client sends is safe to resend". The client's own comment on DEADLINE_OPS says why: "applied
late, it could undo a later write of ours". But DEADLINE_OPS is register, deregister,
update and register_batch: `service_set` goes without a deadline, so a node applies it
whenever it gets to it.

Steps (2 nodes): an operator's Client([A, B]) sets the service's threshold/metadata to v0;
A is SIGSTOPped; set_service(v1): the attempt to A times out after attempt_timeout, the
client resends it to B, which applies it; set_service(v2) through B; A resumed 4 s after the
stop. Expected: v2 everywhere. Actual: v1 on both nodes.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from helpers import holds_for, start_all, wait_until
from r20lib import cluster, members_up, req

from meshreg import Client

SERVICE = "ss"


def settings(node) -> tuple[float, dict[str, str]] | None:
    r = req(node, "instances", 1.0, service=SERVICE, healthy_only=False)
    if not r or not r.get("ok"):
        return None
    return r["result"].get("protect_threshold"), r["result"].get("service_metadata")


@pytest.mark.timeout(90)
def test_stale_service_set_does_not_undo_a_later_one(started_nodes, tmp_path: Path) -> None:
    nodes = cluster(2, str(tmp_path), ("--peer-timeout", "1.0", "--check-interval", "0.5"))
    started_nodes.extend(nodes)
    start_all(nodes)
    a, b = nodes
    wait_until(lambda: members_up(nodes), 15, 0.2, "both members up")
    with Client([a.address, b.address]) as operator:  # default timeout 3 s, attempts 1 s
        operator.set_service(SERVICE, protect_threshold=0.1, metadata={"v": "0"})
        wait_until(lambda: settings(b) == (0.1, {"v": "0"}), 5, 0.1, "v0 on B")
        a.signal(signal.SIGSTOP)
        try:
            stopped = time.monotonic()
            operator.set_service(SERVICE, protect_threshold=0.5, metadata={"v": "1"})
            operator.set_service(SERVICE, protect_threshold=0.0, metadata={"v": "2"})
            assert settings(b) == (0.0, {"v": "2"})
            # the stop outlasts every attempt's deadline (its 1 s attempt + 0.5 s)
            resume_at = stopped + 4.0
            wait_until(lambda: time.monotonic() >= resume_at, 6, 0.05, "the stop's end")
        finally:
            a.signal(signal.SIGCONT)
        latest = (0.0, {"v": "2"})
        seen: list[object] = []

        def latest_on_b() -> bool:  # B never stopped: it must keep the operator's last write
            seen.append(settings(b))
            return seen[-1] in (None, latest)

        try:
            holds_for(latest_on_b, 4.0, 0.1, "the operator's last service_set (v2) on B")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; B shows {seen[-1]!r}, A {settings(a)!r}") from None
