"""review34 F1: ``meshreg config import --history`` of a data id whose current version has
the same state as the one before it (a rollback to the content in force, or the same
content published again: an ordinary CI re-publish) leaves the copy BELOW the source's
revision: the replay skips the current version as "equal to the one before" and the
current-version write is skipped because "the replay left" that state.

docs/CONFIG.md "Revisions on import": "With ``--history``, each replayed version goes at
its own archived revision, so a data id absent here gets the source's revision numbers
back" and "that is max(current + 1, archived): revisions only grow, and no client that saw
the source's revision is left behind".  Here a client that saw revision 2 at the source
is refused every read of the copy ("this node holds revision 1 and you have seen 2").
The same import without ``--history`` makes revision 2."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from helpers import NodeProcess, raw_request, run_cli  # noqa: E402

from meshreg import Client  # noqa: E402


@pytest.mark.timeout(60)
def test_import_history_of_a_repeated_state_keeps_the_source_revision(tmp_path) -> None:
    node = NodeProcess("--data-dir", str(tmp_path / "data")).start()
    c = None
    try:
        c = Client([node.address], namespace="src", handle_sigterm=False)
        c.config_publish("rolled", "v1")
        assert c.config_rollback("rolled", 1).revision == 2  # same content as revision 1
        c.config_publish("again", "v1")
        assert c.config_publish("again", "v1").revision == 2  # the same content re-published

        archive = str(tmp_path / "x.zip")
        out = run_cli("config", "export", "--out", archive, "-n", "src", "-s", node.address)
        assert out.returncode == 0, out
        out = run_cli("config", "import", archive, "-n", "copy", "--history", "-s", node.address)
        assert out.returncode == 0, out

        got = {}
        for d in ("rolled", "again"):
            info = c.config_get(d, namespace="copy")
            assert info is not None and info.content == "v1"
            got[d] = info.revision
        # a client that saw revision 2 at the source (min_revision: what it has seen)
        seen = raw_request(node.port, {"v": 1, "id": 1, "op": "config_get", "namespace": "copy",
                                       "group": "DEFAULT_GROUP", "data_id": "rolled",
                                       "min_revision": 2})  # fmt: skip
        assert got == {"rolled": 2, "again": 2}, (
            f"imported with --history into an empty namespace: revisions {got}, the source's "
            f"are 2; a client that saw revision 2 gets {seen.get('error')}"
        )
        assert seen["ok"], seen
    finally:
        if c is not None:
            c.close(timeout=1.0)
        node.cleanup()
