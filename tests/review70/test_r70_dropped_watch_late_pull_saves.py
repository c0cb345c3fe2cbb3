"""review70: a pull's reply is applied to the Watch object the pull was made for, even
after that watch was dropped (unsubscribed) and the service watched again: a slow reply
to the old pull writes the old, older list to the service's disk copy over the newer one
the new watch saved."""

from __future__ import annotations

from r70lib import ips  # (puts tests/client on the path)
from session_harness import SVC, Handle, Harness, addition, snapshot

from meshreg.client.actions import SaveToDisk
from meshreg.client.commands import Subscribe, Unsubscribe


def test_r70_a_late_pull_of_a_dropped_watch_does_not_overwrite_the_disk_copy() -> None:
    """Steps: a listener watches SVC (10.0.0.1 at revision 5).  A push with a gap makes the
    session pull (P1); the node is slow.  The listener unsubscribes (the watch is dropped),
    then subscribes again: a new watch, a new pull (P2), answered at once with revision 8
    (10.0.0.1, 10.0.0.2), saved to disk.  Then P1's answer arrives: revision 6
    (10.0.0.1, 10.0.0.3 -- an instance since removed).

    What happens: P1's closure holds the old Watch; ``_pulled`` applies revision 6 to the
    old view and emits SaveToDisk(SVC, [10.0.0.1, 10.0.0.3]): the disk copy (what a
    process started in an outage serves) goes back from revision 8 to revision 6, with
    the removed instance.

    What should happen: an answer to a pull of a watch no longer in ``watches`` is
    ignored (or applied to the current watch by its revision, which keeps revision 8);
    the last SaveToDisk of SVC is revision 8's list."""
    h = Harness(servers=("a:1", "b:2"))
    first = lambda listing: None  # noqa: E731
    h.do(Subscribe(SVC, first, 3.0, Handle()))
    (p0,) = h.unanswered("instances")
    h.reply(p0, snapshot(1, 5, "10.0.0.1"))
    h.push(addition(1, 7, "10.0.0.9"))  # a gap (base 8 over revision 5): pulled
    (p1,) = h.unanswered("instances")
    h.do(Unsubscribe(SVC, first, Handle()))
    assert SVC not in h.core.watches
    second = lambda listing: None  # noqa: E731
    h.do(Subscribe(SVC, second, 3.0, Handle()))
    (p2,) = [r for r in h.unanswered("instances") if r.id != p1.id]
    h.reply(p2, snapshot(1, 8, "10.0.0.1", "10.0.0.2"))
    h.reply(p1, snapshot(1, 6, "10.0.0.1", "10.0.0.3"))  # the slow node's old answer
    saved = [ips(a.listing) for a in h.actions if isinstance(a, SaveToDisk)]
    assert saved[-1] == ["10.0.0.1", "10.0.0.2"], saved
