"""F4 (review70's suspicion): a one-instance service redeployed (the old instance removed,
then the new one registered) while the consumer's empty-protection second opinion is in
flight: the lagging second opinion's [] is applied although a newer push from the very
node whose push emptied the list, listing the new instance, arrived meanwhile.

Steps (fake clock, servers a and b): the consumer watches SVC = [10.0.0.1] (a, epoch 1,
revision 5).
1. a pushes the removal of 10.0.0.1 (revision 6): it would empty the list, so the session
   keeps [10.0.0.1] and asks b for a second opinion (``_confirm_empty`` -> ``_pull``).
2. a pushes the registration of 10.0.0.2 (revision 7, base 6).  The view is still at
   revision 5 (the removal was held back), so it is a GAP: ``_pull`` finds the
   confirmation in flight and only sets ``repull``.
3. b, a few ms behind a (it has the removal, not the registration yet), answers [].

What happens: ``_pulled(confirm=True)`` takes b's [] ("emptied (a push from a:1 would
empty it; b:2 agrees)") and calls the listener with []; only then does the repull ask a,
whose [10.0.0.2] is the next call.  The consumer goes [10.0.0.1] -> [] -> [10.0.0.2]; for one
round trip ``select()`` has nothing, though the client held a's word (revision 7) that the
service has an instance, newer than the push it was confirming (revision 6).

Refuted part: the consumer is never called with [] *after* [10.0.0.2]: the push with the
new instance is never applied before the confirmation is settled (it is a gap on the view
the held-back removal left), and pulls of one watch are serialised (``pulling`` /
``repull``), so the only order is the one above.  There was a real zero moment (between
the removal and the registration), so the harm is a spurious, momentary [] (severity low).

What should happen: a push received while a confirmation is out that shows the emptying
node's list non-empty at a newer revision settles the question (no empty list to
confirm): the confirmation's [] is not applied, or the repull is answered first.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import r72lib  # noqa: E402, F401  (tests/client on the path)
from session_harness import SVC, Handle, Harness, addition, removal, snapshot  # noqa: E402

from meshreg.client.actions import Complete  # noqa: E402
from meshreg.client.commands import Subscribe  # noqa: E402


def ips(listing) -> list[str]:  # type: ignore[no-untyped-def]
    return [i.ip for i in listing]


def test_r72_a_lagging_second_opinion_does_not_empty_a_list_a_newer_push_refilled() -> None:
    h = Harness(servers=("a:1", "b:2"))
    calls: list = []
    handle = Handle()
    h.do(Subscribe(SVC, calls.append, 3.0, handle))
    (pull,) = h.unanswered("instances")
    h.reply(pull, snapshot(1, 5, "10.0.0.1"))
    assert isinstance(h.outcome(handle), Complete)
    h.advance(0)
    h.answer_all("ping", {"epoch": 1, "version": "1", "address": h.connected})
    told = len(h.listener_calls())
    h.push(removal(1, 5, "10.0.0.1"))  # the old instance goes
    (confirm,) = h.unanswered("instances")
    assert confirm.to == "b:2"
    h.advance(5)
    h.push(addition(1, 6, "10.0.0.2"))  # the new one comes (a gap on the held view)
    h.advance(5)
    h.reply(confirm, snapshot(2, 3), source="b:2")  # b lags by a few ms: []
    for req in h.unanswered("instances"):  # the repull: a lists the new instance
        h.reply(req, snapshot(1, 7, "10.0.0.2"))
    seen = [ips(c) for c in h.listener_calls()[told:]]
    assert seen and seen[-1] == ["10.0.0.2"], seen
    assert [] not in seen, (
        f"the listener was called with {seen}: [] from the lagging second opinion, after a's "
        "push of revision 7 listing 10.0.0.2 had arrived"
    )
