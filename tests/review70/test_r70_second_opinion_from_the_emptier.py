"""review70: empty protection's second opinion, asked of another server, falls back on
the client's own server -- the one whose push or answer emptied the list -- when that
other server is slow (alive, answering within the pull's budget) or when a third server
could have been asked instead; the emptier's own "empty" is then taken as its second
opinion and the consumer is called with [] for a live instance."""

from __future__ import annotations

from r70lib import ips, watching  # (puts tests/client on the path)
from session_harness import Harness, removal, snapshot

from meshreg.client.actions import DirectSend


def test_r70_a_slow_second_opinion_is_not_replaced_by_the_emptying_servers_answer() -> None:
    """Steps: servers a, b (attempt 500 ms; a pull's budget is 3 s).  The consumer
    watches a service listing 10.0.0.1; a's push removes it, so the session asks b for a
    second opinion.  b is alive but loaded: it answers after 700 ms, listing the instance.

    What happens: at 500 ms b's attempt ends and the confirmation is sent through the
    server, a -- the node that just emptied the list.  a answers [] (at 600 ms), that is
    taken as the second opinion ("a:1 agrees" with itself), and the listener is called
    with [] though b lists the instance; b's answer (700 ms) is dropped as late.

    What should happen: the second opinion comes from a node other than the one that
    emptied the list: b is given the pull's budget (or another server is asked), and a's
    repeated "empty" is never taken as its own confirmation; b's answer keeps the list."""
    h = Harness(servers=("a:1", "b:2"))
    watching(h, "10.0.0.1")
    h.push(removal(1, 5, "10.0.0.1"))
    (confirm,) = h.unanswered("instances")
    assert confirm.to == "b:2"
    h.advance(600)  # b is slow; meanwhile the session gave up on it after one attempt
    for req in h.unanswered("instances"):
        if req.to == "a:1":  # the confirmation, re-sent to the server that emptied it
            h.reply(req, snapshot(1, 6))  # a: still empty
    h.advance(100)
    h.reply(confirm, snapshot(2, 3, "10.0.0.1"), source="b:2")  # b: it is there
    assert ips(h.listener_calls()[-1]) == ["10.0.0.1"], h.logs()[-2:]
    assert h.requests("instances", to="a:1")[1:] == [], "asked a for a second opinion on a"


def test_r70_with_three_servers_the_second_opinion_skips_the_emptier() -> None:
    """Steps: servers a, b, c.  A push from a empties the watched list; the second
    opinion goes to b, whose connection never comes up (b is down); c is up.

    What happens: after the ~1 s of retries on b (DIRECT_INSIST) the confirmation goes
    through the server, a, whose [] is taken as the second opinion: the listener gets []
    though c (never asked) lists the instance.

    What should happen: the next server other than the one that emptied the list is
    asked (c here); a's answer is no second opinion on a's own push."""
    h = Harness(servers=("a:1", "b:2", "c:3"), direct=DirectSend.NOT_CONNECTED)
    watching(h, "10.0.0.1")
    h.push(removal(1, 5, "10.0.0.1"))
    h.advance(1200)  # b never connects
    h.direct = DirectSend.SENT
    for req in h.unanswered("instances"):
        who = req.to
        if who == "c:3":
            h.reply(req, snapshot(3, 9, "10.0.0.1"))
        elif who == "a:1":
            h.reply(req, snapshot(1, 6))
    h.advance(100)
    for req in h.unanswered("instances"):  # whoever is asked next: c lists it
        if req.to == "c:3":
            h.reply(req, snapshot(3, 9, "10.0.0.1"))
    assert ips(h.listener_calls()[-1]) == ["10.0.0.1"], h.logs()[-2:]
    assert h.requests("instances", to="a:1")[1:] == [], "asked a for a second opinion on a"
