"""review33 F5 (low): ``meshreg config import --history`` of a data id whose gray version
was made before its last publishes ends one revision above the source's, although
docs/CONFIG.md ("Revisions on import") says "With ``--history``, each replayed version
goes at its own archived revision, so a data id absent here gets the source's revision
numbers back".

Source: publish v1 (r1), gray (r2), publish v2 (r3), publish v3 (r4; the gray version
still in force).  Imported with ``--history`` into an empty namespace: r1, r3, r4 are
replayed at their numbers (the current version r4 among them), then the gray write goes
on top of it at r5, not at r4 ("a main version whose gray version follows is written one
below, so the gray write makes the source's revision" does not hold when the replay
already wrote the current main version)."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from helpers import NodeProcess, run_cli  # noqa: E402

from meshreg import Client  # noqa: E402


@pytest.mark.timeout(60)
def test_import_history_keeps_the_source_revision_of_a_gray_data_id(tmp_path) -> None:
    node = NodeProcess("--data-dir", str(tmp_path / "data")).start()
    src = copy = None
    try:
        src = Client([node.address], handle_sigterm=False)
        src.config_publish("h", "v1")
        src.config_gray("h", "G", labels={"env": "canary"})
        src.config_publish("h", "v2")
        source = src.config_publish("h", "v3")
        assert source.revision == 4

        archive = str(tmp_path / "x.zip")
        out = run_cli("config", "export", "--out", archive, "-s", node.address)
        assert out.returncode == 0, out
        out = run_cli("config", "import", archive, "-n", "copy", "--history", "-s", node.address)
        assert out.returncode == 0, out

        copy = Client([node.address], namespace="copy", handle_sigterm=False)
        got = copy.config_get("h")
        assert got is not None and got.content == "v3" and got.gray is not None
        history = [(v.revision, v.change, v.content) for v in copy.config_history("h")]
        assert got.revision == source.revision, (
            f"imported with --history into an empty namespace, h is at revision "
            f"{got.revision}, the source at {source.revision}; history {history}"
        )
    finally:
        for c in (src, copy):
            if c is not None:
                c.close(timeout=1.0)
        node.cleanup()
