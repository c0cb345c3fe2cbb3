"""review69 F6: ``_refusal(tried)`` returns the refusal of ``tried[-1]`` (``tried`` is
``dict.fromkeys(p.tried)``: first-try order), and ``_unanswered`` prints it as
"``{self.server}`` said: ...".  With two servers refusing for different reasons (a:1 its
ACL, b:2 a mechanism mismatch) and the call back on a:1 (its connection closed midway:
the case this change makes "stand"), the error says "a:1 said: security mechanism
mismatch", which a:1 never said: the operator is sent to the keys of a node whose ACL
refused the client.  (Before the change, this trace named a:1's last failure.)"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "client"))
sys.path.insert(0, os.path.join(HERE, ".."))

from session_harness import Handle, Harness  # noqa: E402

from meshreg.client.actions import Fail  # noqa: E402
from meshreg.client.commands import Call  # noqa: E402

ACL = "authentication refused (ZAP status 400)"
MISMATCH = "security mechanism mismatch (one side has a key, the other none)"
CLOSED = "connection closed during the handshake (Broken pipe)"


def test_f6_the_refusal_named_is_the_server_s_own() -> None:
    h = Harness(servers=("a:1", "b:2"), handshake=False, attempt_ms=300)
    call = Handle()
    h.do(Call("ping", {}, 1.0, call))
    assert h.core.server == "a:1"
    h.run(h.core.server_refused(ACL, True, h.now))
    h.run(h.core.server_disconnected(h.now))  # -> b:2
    h.advance(50)
    assert h.core.server == "b:2"
    h.run(h.core.server_refused(MISMATCH, True, h.now))
    h.run(h.core.server_disconnected(h.now))  # -> a:1
    h.advance(50)
    assert h.core.server == "a:1"
    h.run(h.core.server_refused(CLOSED, False, h.now))
    h.advance(1000)
    failed = h.outcome(call)
    assert isinstance(failed, Fail), failed
    text = str(failed.error)
    assert f"a:1 said: {MISMATCH}" not in text, text  # b:2's words put in a:1's mouth
