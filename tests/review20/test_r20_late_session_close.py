"""review20 F1: a session_close attempt that waited out a node's stall is applied when the
node resumes, with a fresh stamp and against the node's stale table, and deregisters an
instance that a new provider process registered meanwhile: a live instance vanishes from
every node until that process's session redo (two renewals: ~10 s at the default 5 s).

README: "every request the client sends is safe to resend"; "Several servers may be given;
when one does not answer within attempt_timeout, the client moves to the next and
resends"; PROTOCOL.md 2.1 "Deadline": a write carries a deadline after which no node
applies it, but `session_close` carries none (2.3a: "a provider's shutdown in one
message"), so the first attempt, queued at the frozen node, is applied whenever that node
resumes.

Steps (2 nodes, default health timings): provider 1 registers X in its session through A;
A is SIGSTOPped; provider 1 closes (its session_close to A times out, the client resends
it to B); provider 2 (the restarted app, a new session) registers X through B (moving it
to its session); A is frozen 6 s in all, then SIGCONT. Expected: X stays registered and
healthy (provider 2 is alive and renewing). Actual: at SIGCONT A applies the queued close
of provider 1's session, deregisters X everywhere, and X is missing on both nodes until
provider 2's renewals report it short twice and it registers again.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from helpers import holds_for, start_all, wait_until
from r20lib import cluster, listing, members_up

from meshreg import Client

FREEZE = 6.0  # s A stays stopped (> peer_timeout: its peers count it down meanwhile)
X = ("lc", "10.12.0.1", 80)


@pytest.mark.timeout(90)
def test_stale_session_close_does_not_remove_a_newer_registration(
    started_nodes, tmp_path: Path
) -> None:
    nodes = cluster(2, str(tmp_path), ("--peer-timeout", "1.0", "--check-interval", "0.5"))
    started_nodes.extend(nodes)
    start_all(nodes)
    a, b = nodes
    wait_until(lambda: members_up(nodes), 15, 0.2, "both members up")
    addr = f"{X[1]}:{X[2]}"
    p1 = Client([a.address], timeout=3.0)  # default beat interval (5 s), sessions
    p2 = None
    try:
        p1.register(*X)
        wait_until(lambda: (listing(b, X[0]) or {}).get(addr) is True, 5, 0.1, "X on b")
        a.signal(signal.SIGSTOP)
        t0 = time.monotonic()
        p1.close()  # the first attempt waits in A's socket; the resend is applied by B
        after_close = listing(b, X[0])  # (B may or may not have applied a resent close)
        p2 = Client([b.address], timeout=3.0)
        p2.register(*X)  # the provider's new process: a new session
        assert (listing(b, X[0]) or {}).get(addr) is True, after_close
        resume_at = t0 + FREEZE  # the stop outlasts every attempt's deadline
        wait_until(lambda: time.monotonic() >= resume_at, FREEZE + 2, 0.05, "the stop's end")
    finally:
        a.signal(signal.SIGCONT)

    seen: list[object] = []

    def live_on_b() -> bool:  # B never stopped: it must keep listing the live instance
        got = listing(b, X[0], 1.0)
        seen.append(got)
        return got is None or got.get(addr) is True

    try:
        holds_for(
            live_on_b,
            5.0,
            0.1,
            f"{addr} (registered by a live provider after the old one closed) listed and "
            "healthy on B (never stopped) after A resumed",
        )
        wait_until(lambda: (listing(a, X[0]) or {}).get(addr) is True, 5, 0.1, "X on A")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; B listed: {seen[-1]!r}") from None
    finally:
        if p2 is not None:
            p2.close()
