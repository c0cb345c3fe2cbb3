"""review40: a second-language client written from docs/PROTOCOL.md alone (no meshreg import in
the client: /tmp/r40/client.py); the places where the node and the document disagree, or where
the document leaves the client without an answer, checked against real node processes.

F1. A registry write (``register``, ``deregister``, ``update``, ``service_set``,
``session_close``) refused for its ``deadline`` is answered ``UNAVAILABLE`` with
``"written": false`` in ``error``.  PROTOCOL.md documents that key for config writes only
(section 3: "A config write refused before anything was written also carries
``"written": false``"; 2.15 ``deadline``); 2.1 "Deadline" says only ``UNAVAILABLE``, nothing
changes.

F2. A cluster member restarted under a watcher's SUB publishes the exact-topic sync of its
new epoch (and the catch-up deltas) while it still refuses ``instances`` (``UNAVAILABLE``,
catching up).  PROTOCOL.md 4.4's algorithm pulls on that sync and says nothing about a pull
answered with an error (retry here? when? fail over both sockets, as 5.2's "ask another
server" and 4.1's "one node at a time" together suggest?); for a quiet service no further
notification comes to trigger the next pull before ``resync_interval``.

Both answered in PROTOCOL.md: F1's ``written`` is documented for registry writes refused
for their deadline (2.1, section 3; this test checks the node and the document agree);
F2's pull has an error branch (4.4: fail over, as the reference client does; every server
refused: pull again in 0.25 s).  The reviewer's F2 test (the node should not sync its
watchers before it answers reads) is not in the suite: it asks for a behaviour change the
document now answers.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from helpers import raw_request

DOC = (Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")


def section(start: str, end: str) -> str:
    i = DOC.index(start)
    return DOC[i : DOC.index(end, i + len(start))]


def test_f1_late_registry_write_carries_written_false_undocumented(start_node: Any) -> None:
    node = start_node()
    past = int(time.time() * 1000) - 60_000
    inst = {"service": "r40late", "ip": "10.0.0.5", "port": 8080}
    seen = {}
    for op, fields in [
        ("register", inst),
        ("deregister", inst),
        ("service_set", {"service": "r40late", "protect_threshold": 0.1}),
        ("session_close", {"session": "0" * 32}),
    ]:
        reply = raw_request(node.port, {"v": 1, "id": 7, "op": op, **fields, "deadline": past}, 5.0)
        assert not reply["ok"] and reply["error"]["code"] == 8, reply
        seen[op] = reply["error"]
    sends_written = {op for op, err in seen.items() if "written" in err}
    if not sends_written:
        return  # the node no longer sends it: the document is right
    deadline_text = section("**Deadline** (`register`", "*A forwarded write with a deadline")
    errors_text = section("A write refused before anything was written", "`id` is the request's id")
    documented = "`written`" in deadline_text or re.search(
        r"registry write|`register`", errors_text
    )
    assert documented, (
        f"the node answers a late {sorted(sends_written)} with error keys {seen['register']!r}, "
        "but PROTOCOL.md documents `written` for config writes only (section 3, 2.15)"
    )
