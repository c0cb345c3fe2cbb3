"""review69: the handshake-failure hint (session.py ``_unreachable_hint``) and the
standing refusal (``_refusal``) in states the change did not consider.

F1: a port held by another program (an HTTP or SSH server: ``-s`` names the wrong port)
closes the connection during the handshake; the new hint says "a process listens there
and ended the handshake: if the node runs with --key ..." and no longer says to check
--server / MESHREG_SERVERS (reproduced with ``meshreg ping`` against a TCP server that
answers "HTTP/1.1 400" and closes: REPORT.md).

F2: a definitive refusal recorded earlier "stands" even when nothing listens at the
server any more (the node stopped, e.g. to fix its ACL): the error says the handshake
failed and "a process listens there", and sets ``refused`` (a listener is dropped, a
sidecar stops waiting), where before it said "refused the connection (nothing listens
there)"."""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "client"))
sys.path.insert(0, os.path.join(HERE, ".."))

from session_harness import Handle, Harness  # noqa: E402

from meshreg.client.actions import Fail  # noqa: E402
from meshreg.client.commands import Call  # noqa: E402

CLOSED = "connection closed during the handshake (Broken pipe)"
MISMATCH = "security mechanism mismatch (one side has a key, the other none)"


def test_f1_a_wrong_port_closing_the_handshake_still_says_check_the_server() -> None:
    """The trace of ``meshreg ping -s 127.0.0.1:<an HTTP server's port>``: TCP accepted,
    the handshake cut (EPIPE), no node ever answered there.  Before the change the hint
    said "is `meshreg node` running there? check --server / MESHREG_SERVERS; or keys";
    now only the keys, which sends the operator after keys for a typo in the port."""
    h = Harness(servers=("a:1",), handshake=False, fail_when_refused=True)
    read = Handle()
    h.do(Call("ping", {}, 3.0, read))
    h.core.server_tcp_connected()
    h.run(h.core.server_refused(CLOSED, False, h.now))
    h.run(h.core.server_disconnected(h.now))
    h.run(h.core.server_unreachable(h.now))
    failed = h.outcome(read)
    assert isinstance(failed, Fail), failed
    text = str(failed.error)
    assert "check --server" in text or "MESHREG_SERVERS" in text, text


def _refused_then_node_gone(fail_when_refused: bool) -> Fail:
    """A mismatch at a:1 (recorded), then the node is stopped (to fix its keys/ACL): the
    client's next connection's TCP connects are refused: nothing listens there."""
    h = Harness(servers=("a:1",), handshake=False, fail_when_refused=fail_when_refused,
                attempt_ms=300)  # fmt: skip
    first = Handle()
    h.do(Call("ping", {}, 1.0, first))
    h.run(h.core.server_refused(MISMATCH, True, h.now))
    h.run(h.core.server_disconnected(h.now))
    if not fail_when_refused:
        h.advance(1000)
    assert isinstance(h.outcome(first), Fail)
    # the node goes away; the loop's new connection (as the agent reports it) is refused
    h.core.server_connected("a:1", None)
    h.advance(100)
    second = Handle()
    h.do(Call("ping", {}, 1.0, second))
    for _ in range(10):
        if h.outcome(second) is not None:
            break
        h.run(h.core.server_unreachable(h.now))
        h.advance(100)
    failed = h.outcome(second)
    assert isinstance(failed, Fail), failed
    return failed


def test_f2_a_one_shot_call_while_nothing_listens_is_not_said_refused_by_keys() -> None:
    failed = _refused_then_node_gone(fail_when_refused=True)
    text = str(failed.error)
    assert "a process listens there" not in text, text
    assert "nothing listens there" in text, text
    assert not failed.error.refused, text


def test_f2_a_timed_out_call_while_nothing_listens_does_not_say_a_process_listens() -> None:
    failed = _refused_then_node_gone(fail_when_refused=False)
    text = str(failed.error)
    assert "a process listens there" not in text, text
