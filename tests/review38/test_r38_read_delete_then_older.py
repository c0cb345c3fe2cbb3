"""review38: a client that read a data id as deleted later reads its older, live version.

docs/CONFIG.md (Client, "Never backwards, read your own writes"): "The client keeps the
highest revision it has seen per data id (reads, write results, listens, pushes) and
sends it as min_revision with every read."; (Reads) "A client carries the highest
revision it has seen per data id (min_revision); a node holding less answers
UNAVAILABLE ... so the client never steps backwards"; (Model) "Delete is a tombstone
revision".  A config_get of a deleted data id is answered NOT_FOUND "does not exist
(deleted at revision R)", but the client does not keep R (client/config_session.py
``_call``: ``got`` calls ``self.note``, ``failed`` does not), so its next read, on a node
that has not heard of the delete, carries the older min_revision and is served the live
version the client had already seen deleted.

Three nodes; n2's peer ports (P+2, P+3) dropped in its namespace, so it holds revision 1
while n1 and n3 commit the delete (revision 2); clients reach every node.  Client X
(servers n1 then n2, in n3's namespace) publishes v1 (revision 1) and, once the delete is
acknowledged to client Y, reads it through n1: absent.  X's requests to n1 are then
dropped, X fails over to n2 and reads again: v1, revision 1.  Fixed: the NOT_FOUND carries
the delete's revision (``error.revision``), which the client keeps as its floor.

The reviewer's F2 (a revision seen in ``config_history`` or ``config_list`` is no floor
either) is answered in docs/CONFIG.md instead: those reads show versions a majority has
not acknowledged yet, which no floor may be taken from (a read would wait for a version
that may never be acknowledged).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from r38lab import PORT, CasLab, skip_reason

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason())),
]


@pytest.mark.timeout(90)
def test_a_client_that_read_the_delete_never_reads_the_older_version(tmp_path: Path) -> None:
    lab = CasLab(tmp_path / "lab")
    try:
        lab.up()
        # a data id that n2 (index 1, the one kept behind) does not own
        data_id = next(f"r38-del-{i}" for i in range(100) if lab.owner(f"r38-del-{i}") != 1)
        x = lab.repl(2, [0, 1], data_id)
        y = lab.repl(0, [0], data_id)
        first = x("publish v1 0")
        assert first["ok"], first
        r1 = first["rev"]
        # n2 holds it (its listener-free dump: the current version there)
        assert lab.wait_for(
            lambda: '"v1"' in (lab.oneshot(1, "dump", timeout=5, data_id=data_id) or ""),
            10,
            "n2 has v1",
        ), lab.events
        for direction in ("--sport", "--dport"):
            lab.drop(
                1,
                [
                    "INPUT",
                    "-i",
                    "eth0",
                    "-p",
                    "tcp",
                    direction,
                    f"{PORT + 2}:{PORT + 3}",
                    "-j",
                    "DROP",
                ],
            )
        lab.ev("n2's peer ports dropped")
        gone = y("delete")
        assert gone["ok"] and gone["deleted"], gone
        r2 = gone["rev"]
        assert r2 == r1 + 1, (r1, gone)
        seen = x("get")
        assert seen.get("absent") and seen["server"] == lab.addr(0), seen  # X saw the delete
        lab.drop(
            2,
            ["OUTPUT", "-d", lab.lab.addresses[0], "-p", "tcp", "--dport", str(PORT), "-j", "DROP"],
        )
        lab.ev("X's requests to n1 dropped")
        later = x("get", timeout=30)
        lab.ev(f"X read again: {later}")
        assert not later.get("ok"), (
            f"X read revision {later.get('rev')} ({later.get('content')!r}) from "
            f"{later.get('server')} "
            f"after it had read the data id deleted at revision {r2}"
        )
    finally:
        lab.close()
