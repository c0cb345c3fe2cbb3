"""review28 F2, F3: PROTOCOL.md contradicts itself (and the node) about what a client
must handle.

F2. Section 3, "NOT_FOUND scope": "Of the registry's ops it is sent only for `beat` and
`update`", and the error table's "Sent for" column lists only `beat`, `update` and the
config ops.  But 2.3a says `session_renew`/`session_close` naming a session of another
namespace get NOT_FOUND, and the node sends it:

    session_renew {"namespace": "other", "session": <opened in public>} ->
      NOT_FOUND "session_renew: session 01234567... belongs to another namespace than 'other'; ..."

A client written from section 3 (which tells it what to do per code) has no rule for it.

F3. 2.3b says `session_renew`'s result is `{"instances": n, "known": bool}`; the table of
2.3a (and the node) add `unhealthy_after` (and `ready`, `members_up`, `members`).
"""

from __future__ import annotations

import re
import secrets

import pytest
from r28lib import DocClient, NodeProcess, section


@pytest.mark.timeout(60)
def test_not_found_for_session_ops_is_in_the_error_section(tmp_path) -> None:
    node = NodeProcess("--data-dir", str(tmp_path / "d"))
    try:
        node.start()
        c = DocClient([node.address])
        try:
            sid = secrets.token_hex(16)
            c.call("session_open", namespace="public", session=sid)
            renew = c.call_once("session_renew", namespace="other", session=sid)
            close = c.call_once("session_close", namespace="other", session=sid)
        finally:
            c.close()
    finally:
        node.cleanup()
    sent = {op: r["error"]["name"] for op, r in (("session_renew", renew), ("session_close", close))
            if not r["ok"]}  # fmt: skip
    assert sent == {"session_renew": "NOT_FOUND", "session_close": "NOT_FOUND"}, (renew, close)
    errors = section("3 Errors")
    row = next(line for line in errors.splitlines() if line.startswith("| 6 | `NOT_FOUND`"))
    scope = errors[errors.index("**`NOT_FOUND` scope.**"):][:600]
    problems = []
    if "session_renew" not in row or "session_close" not in row:
        problems.append(f"the NOT_FOUND row's 'Sent for' omits the session ops: {row}")
    if "sent only for `beat` and `update`" in scope.replace("\n", " "):
        problems.append("'NOT_FOUND scope' says registry ops send it only for beat and update")
    assert not problems, problems


@pytest.mark.timeout(60)
def test_session_renew_result_in_2_3b_names_every_key_the_node_sends(tmp_path) -> None:
    node = NodeProcess("--data-dir", str(tmp_path / "d"))
    try:
        node.start()
        c = DocClient([node.address])
        try:
            result = c.call("session_renew", session=secrets.token_hex(16))
        finally:
            c.close()
    finally:
        node.cleanup()
    text = section("2.3b")
    documented = set(re.findall(r'"(\w+)"', text[text.index("Result:"):]))
    missing = sorted(set(result) - documented)
    assert not missing, f"2.3b's result {sorted(documented)} lacks {missing} (node sent {result})"
