"""review70: a second opinion refused by a member catching up from its peers
(UNAVAILABLE: a node catching up answers no read, review24 F8) is handled as "no server
answers": a false warning, and the list a push emptied is not looked at again until the
resync (10 s by default), while both nodes answer."""

from __future__ import annotations

from r70lib import ips, watching  # (puts tests/client on the path)
from session_harness import Harness, removal

from meshreg.errors import ErrorCode

PONG = {"epoch": 1, "version": "1", "address": "a:1"}


def test_r70_a_second_opinion_refused_as_catching_up_is_asked_again_soon() -> None:
    """Steps: servers a, b; resync every 10 s.  A push from a removes the last instance of
    a watched service; the second opinion goes to b, which restarted a moment ago and is
    catching up from its peers: it refuses the read UNAVAILABLE.  Both a and b answer
    everything else.

    What happens: ``_catching_up`` applies only to reads sent through the server
    (``via is None``), so the refusal fails the pull: ``_pull_failed`` logs "no meshreg
    server answers (UNAVAILABLE from b:2: ...); serving the last known list" and nothing
    asks again until the resync: for 10 s the consumer keeps an instance a says is gone
    (a plain read refused so is sent again after CATCHING_UP_RETRY, 0.25 s).

    What should happen: the second opinion is asked again shortly (of b once it has
    caught up, or of another server), and no "no meshreg server answers" is said while
    nodes answer."""
    h = Harness(servers=("a:1", "b:2"), resync_ms=10_000)
    watching(h, "10.0.0.1")
    h.push(removal(1, 5, "10.0.0.1"))
    (confirm,) = h.unanswered("instances")
    assert confirm.to == "b:2"
    h.fail(confirm, ErrorCode.UNAVAILABLE, "this node is catching up from its peers")
    assert ips(h.listener_calls()[-1]) == ["10.0.0.1"]  # kept meanwhile (right)
    for _ in range(20):  # 2 s; every ping answered: both nodes are up
        h.advance(100)
        h.answer_all("ping", PONG)
    assert not [x for x in h.logs() if "no meshreg server answers" in x], h.logs()[-1]
    # (the first pull, the confirmation, then any send: the confirmation's own re-send,
    # under its id, counts; the reviewer's version counted new ids only)
    asked_again = h.requests("instances")[2:]
    assert asked_again, "the second opinion was not asked again within 2 s"
