"""review63 F1: a register()/register_many() still within its time-out when the node
comes up fails at once with "reached node ... after its deadline ... check the clocks
(NTP)", while the client holds kept registrations from earlier in the outage.

Promised (README "Outage", CHANGELOG "register_many keeps what no node could take"):
a register()/register_many() entry raises/returns an error (kept) when *no node could
take it* (none reachable, none ready, no answer).  Here the node is up and ready 2 s
into a 12 s call; an attempt of the call that waited in the client's socket while no
node listened reaches the node past its deadline, the node refuses it UNAVAILABLE
("not applied"), and the client ends the whole call with that refusal instead of the
attempt that was in time.  The message blames the clocks of one machine.  The entry is
kept and made at the next kept try (~3.5 s later), so nothing is lost, but the caller is
told the register failed and sent to check NTP.  Without earlier kept registrations the
same call succeeds (0.0 s after the node answers).
"""

from __future__ import annotations

import tempfile
import threading
import time
from typing import Any

import pytest
from helpers import NodeProcess, free_port_pair, wait_until

from meshreg import Client

pytestmark = pytest.mark.timeout(120)

KEPT_BEFORE = [{"service": "fleet", "ip": f"10.6.{n // 250}.{n % 250 + 1}", "port": 80}
               for n in range(1000)]  # fmt: skip


def _call_spanning_the_node_start(call: Any) -> tuple[BaseException | None, list[Any]]:
    port = free_port_pair()
    address = f"127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="r63-") as tmp:
        node = NodeProcess("--data-dir", tmp, port=port)
        agent = Client([address], timeout=12.0, attempt_timeout=0.5)
        out: dict[str, Any] = {}
        try:
            failed = agent.register_many(KEPT_BEFORE, timeout=1.5)  # no node: all kept
            assert len(failed) == len(KEPT_BEFORE) and agent.kept_registrations == 1000

            def run() -> None:
                started = time.monotonic()
                try:
                    out["failed"] = call(agent)
                    out["error"] = None
                except Exception as exc:  # noqa: BLE001
                    out["error"], out["failed"] = exc, []
                out["took"] = time.monotonic() - started

            thread = threading.Thread(target=run, daemon=True)
            thread.start()
            # the call's attempts wait on the absent node for a while (it has 12 s)
            wait_until(lambda: thread.is_alive(), 1, 0.01)
            thread.join(2.0)  # the outage lasts 2 s of the call: the situation itself
            assert thread.is_alive()
            node.start()
            thread.join(30)
            assert not thread.is_alive()
            return out["error"], out["failed"]
        finally:
            agent.close()
            node.cleanup()


def test_register_in_flight_when_the_node_comes_up_is_not_failed_by_a_stale_attempt() -> None:
    error, _ = _call_spanning_the_node_start(lambda c: c.register("late", "10.7.0.1", 80))
    assert error is None, (
        f"register() with 12 s to go, the node up and ready, raised: {error!r}"
    )


def test_register_many_in_flight_when_the_node_comes_up_is_not_failed_by_stale_attempts() -> None:
    entries = [{"service": "late", "ip": f"10.7.{n // 250}.{n % 250 + 1}", "port": 80}
               for n in range(500)]  # fmt: skip
    _, failed = _call_spanning_the_node_start(lambda c: c.register_many(entries, timeout=12.0))
    assert not failed, (
        f"register_many with 12 s to go, the node up and ready, failed {len(failed)} of "
        f"{len(entries)}; first: {failed[0][1]!r}"
    )
