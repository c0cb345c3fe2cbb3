"""review34 F2: ``meshreg config import --history`` of a data id whose current version is a
promote (publish v1, gray G, promote: revision 3 at the source) ends at revision 4, its
history ``publish``(3, main G and the gray version still in force: a state the source
never had), ``gray_drop``(4), instead of the source's ``promote`` at 3.

docs/CONFIG.md "History on import": the replay writes each version "as the write that made
it: ... a promote where the gray version became the main one"; "With ``--history``, each
replayed version goes at its own archived revision, so a data id absent here gets the
source's revision numbers back" ("Revisions on import").  The replay plan leaves the
current version out (``_replay_plan``: "the archive's history without its newest entry"),
and the current-version write knows only publish and gray/gray drop."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from helpers import NodeProcess, run_cli  # noqa: E402

from meshreg import Client  # noqa: E402


@pytest.mark.timeout(60)
def test_import_history_replays_a_current_promote_as_a_promote(tmp_path) -> None:
    node = NodeProcess("--data-dir", str(tmp_path / "data")).start()
    c = None
    try:
        c = Client([node.address], namespace="src", handle_sigterm=False)
        c.config_publish("p", "v1")
        c.config_gray("p", "G", labels={"env": "canary"})
        assert c.config_promote("p").revision == 3

        archive = str(tmp_path / "x.zip")
        out = run_cli("config", "export", "--out", archive, "-n", "src", "-s", node.address)
        assert out.returncode == 0, out
        out = run_cli("config", "import", archive, "-n", "copy", "--history", "-s", node.address)
        assert out.returncode == 0, out

        src = [(v.revision, v.change, v.content, v.gray is not None)
               for v in c.config_history("p", namespace="src")]  # fmt: skip
        copy = [(v.revision, v.change, v.content, v.gray is not None)
                for v in c.config_history("p", namespace="copy")]  # fmt: skip
        got = c.config_get("p", namespace="copy")
        assert got is not None and got.content == "G" and got.gray is None
        assert copy == src, f"history of the copy {copy}, of the source {src}"
    finally:
        if c is not None:
            c.close(timeout=1.0)
        node.cleanup()
