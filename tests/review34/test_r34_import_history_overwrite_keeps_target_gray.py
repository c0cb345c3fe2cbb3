"""review34 F3: ``meshreg config import --history --on-conflict overwrite`` of a data id
that has no gray version at the source (in none of its archived versions) into a target
where the data id has a gray version leaves the target's gray version in force: clients
matching the old rule keep getting content the archive does not hold.  Without
``--history`` the same import drops it.

docs/CONFIG.md "The export archive"/Import: "an overwritten data id whose archived item has
no gray version has its own dropped (``config_gray_drop``), so it ends as archived"; with
``--history`` "its gray write only if the replay left another gray version" (the replay
starts from "nothing", not from the target's own gray version)."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from helpers import NodeProcess, run_cli  # noqa: E402

from meshreg import Client  # noqa: E402


@pytest.mark.timeout(60)
def test_import_history_overwrite_drops_the_targets_gray_version(tmp_path) -> None:
    node = NodeProcess("--data-dir", str(tmp_path / "data")).start()
    c = None
    try:
        c = Client([node.address], namespace="src", handle_sigterm=False)
        c.config_publish("o", "v1")
        c.config_publish("o", "v2")
        archive = str(tmp_path / "x.zip")
        out = run_cli("config", "export", "--out", archive, "-n", "src", "-s", node.address)
        assert out.returncode == 0, out

        for ns in ("plain", "hist"):
            c.config_publish("o", "old", namespace=ns)
            c.config_gray("o", "old-gray", labels={"env": "canary"}, namespace=ns)
        out = run_cli("config", "import", archive, "-n", "plain", "--on-conflict", "overwrite",
                      "-s", node.address)  # fmt: skip
        assert out.returncode == 0, out
        out = run_cli("config", "import", archive, "-n", "hist", "--on-conflict", "overwrite",
                      "--history", "-s", node.address)  # fmt: skip
        assert out.returncode == 0, out

        plain = c.config_get("o", namespace="plain")
        hist = c.config_get("o", namespace="hist")
        assert plain.content == "v2" and plain.gray is None  # without --history: as archived
        assert hist.content == "v2"
        made = [(v.revision, v.change) for v in c.config_history("o", namespace="hist")]
        assert hist.gray is None, (
            f"--history --on-conflict overwrite left the target's gray version "
            f"{hist.gray.content!r} for {hist.gray.labels} (revision {hist.revision}); "
            f"the archive has none; history {made}"
        )
    finally:
        if c is not None:
            c.close(timeout=1.0)
        node.cleanup()
