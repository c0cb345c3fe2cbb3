"""review70: a config write's attempt budget is ``CONFIG_WRITE_ATTEMPT`` (2.5 s: a node
that forwards it to a slow or stopped owner answers within FORWARD_TIMEOUT, 2.2 s) only
for its first send.  Every later attempt deadline is computed from the session's
``attempt_timeout`` (1 s by default): after a failover (``_use_server``), and after a
send straight to a member that went out on a retry (``direct_send_result``, the d2ca3fc
fix).  ``Pending`` does not remember its own attempt budget."""

from __future__ import annotations

from r70lib import HERE  # noqa: F401  (puts tests/client on the path)
from session_harness import Handle, Harness

from meshreg.client.actions import Complete, DirectSend
from meshreg.client.commands import ConfigCall
from meshreg.configcenter.model import CONFIG_WRITE_ATTEMPT, FORWARD_TIMEOUT, ConfigKey
from meshreg.errors import ErrorCode

KEY = ConfigKey("public", "DEFAULT_GROUP", "app.yaml")
FIELDS = {"namespace": KEY.namespace, "group": KEY.group, "data_id": KEY.data_id}
RID = "0123456789abcdef0123456789abcdef"
WRITE_MS = int(CONFIG_WRITE_ATTEMPT * 1000)
FORWARD_MS = int(FORWARD_TIMEOUT * 1000)


def entry(revision: int, content: str) -> dict:
    from meshreg.configcenter.model import content_md5

    return {**FIELDS, "content": content, "type": "yaml", "md5": content_md5(content),
            "revision": revision, "modified": 1700000000.5, "modified_by": "n1", "tags": {},
            "description": "", "deleted": False, "change": "publish",
            "origin": "n1"}  # fmt: skip


def test_r70_a_config_write_sent_again_after_a_failover_keeps_its_write_attempt() -> None:
    """Steps: servers a, b, c; attempt_timeout 1 s (the default).  A publish (request id,
    8 s) goes to a, which is down: after CONFIG_WRITE_ATTEMPT (2.5 s) the session fails
    over to b and sends it again.  b is up and forwards it to the data id's owner, which
    is slow: b answers within FORWARD_TIMEOUT (2.2 s), as the node's contract says.

    What happens: b's attempt deadline is now + attempt_timeout (1 s); at 1 s the session
    suspects b (a working node), leaves it for c and sends the write a third time (and
    1 s later leaves c for a); b's answer, read on the DEALER the failover closed, is
    lost.  (The failover line it would log says "a config write 2.5s" per attempt; it is
    held back by the log budget after a's.)

    What should happen: the write's re-send keeps its own attempt budget
    (CONFIG_WRITE_ATTEMPT), as the failover's own message says; b's answer completes it."""
    h = Harness(servers=("a:1", "b:2", "c:3"), attempt_ms=1000)
    pub = Handle()
    fields = {**FIELDS, "content": "b: 2", "request_id": RID}
    h.do(ConfigCall("config_publish", KEY, fields, 8.0, pub))
    h.advance(WRITE_MS + 10)  # a is down: failover to b, sent again
    (again,) = h.unanswered("config_publish")
    assert again.to == "b:2"
    h.advance(FORWARD_MS - 100)  # b forwards to a slow owner; it answers by 2.2 s
    assert h.core.server == "b:2", h.logs("warning")
    assert h.requests("config_publish", to="c:3") == []
    h.reply(again, entry(5, "b: 2"))
    assert isinstance(h.outcome(pub), Complete)


def test_r70_a_config_write_sent_to_a_member_on_a_retry_keeps_its_write_attempt() -> None:
    """Steps: servers a, b.  A publish (request id) is answered by a "UNAVAILABLE ...
    outcome unknown": it goes again straight to b (the next server not tried).  b's
    connection is not up for the first two tries (50 ms apart), then it is sent.  b
    forwards it to a slow owner and answers within FORWARD_TIMEOUT.

    What happens: on the send that went out on a retry, ``direct_send_result`` sets the
    attempt deadline to now + attempt_timeout (here 500 ms), not CONFIG_WRITE_ATTEMPT:
    at 500 ms the write is sent once more, through a -- the node that just said it
    could not tell the outcome -- while b is still working on it.

    What should happen: a send that goes out on a retry gets the request's own attempt
    budget (CONFIG_WRITE_ATTEMPT for a config write), as it does on a first try."""
    h = Harness(servers=("a:1", "b:2"), attempt_ms=500)
    pub = Handle()
    fields = {**FIELDS, "content": "b: 2", "request_id": RID}
    h.do(ConfigCall("config_publish", KEY, fields, 8.0, pub))
    (first,) = h.unanswered("config_publish")
    h.direct = DirectSend.NOT_CONNECTED
    h.fail(first, ErrorCode.UNAVAILABLE, "the responsible node did not answer: outcome unknown")
    h.advance(120)  # b's connection comes up after two retries
    h.direct = DirectSend.SENT
    h.advance(1)
    sent_to_b = [r for r in h.requests("config_publish") if r.to == "b:2"]
    assert sent_to_b
    h.advance(FORWARD_MS - 200)  # b is forwarding; it answers within 2.2 s
    assert h.requests("config_publish", to="a:1")[1:] == [], "sent again through a"
    h.reply(sent_to_b[-1], entry(5, "b: 2"))
    assert isinstance(h.outcome(pub), Complete)
