"""review54 F4: after `meshreg instance-set S ADDR --clear` the node still reports the
override: `meshreg stats` says "1 operator overrides" and `meshreg snapshot save` / `inspect`
"1 instance override(s)", although nothing is overridden any more (the instance is
listed with the provider's own weight and enabled flag).

README "Draining": "`meshreg instance-set SERVICE HOST:PORT --clear` ... drops the
override"; "`stats.usage.overrides` counts the overrides a node holds".  docs/OPERATIONS.md
(snapshot inspect): "holds ... 3 instance override(s)".  A cleared entry is kept for
600 s (core/overrides.py CLEARED_TTL: a stamped "nothing overridden" for the merge) and
counted with the live ones, so an operator checking that a drain was lifted, or what a
backup holds, reads that one is still there.  By hand (review54 NOTES F4): a 2-node
cluster, `set_instance(..., clear=True)`: `stats` "1 operator overrides", the snapshot "1
instance override(s)", the instance enabled.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import NodeProcess, run_cli, wait_until

from meshreg import Client


@pytest.mark.timeout(60)
def test_a_cleared_override_is_not_reported_as_held(tmp_path: Path) -> None:
    data = tmp_path / "data"
    node = NodeProcess("--data-dir", str(data))
    try:
        node.start()
        s = ("-s", node.address)
        with Client([node.address], handle_sigterm=False) as c:
            c.register("orders", "10.0.0.5", 8080)

            def overrides() -> int:
                out = run_cli("stats", "--json", *s)
                assert out.returncode == 0, out
                return int(json.loads(out.stdout)["usage"]["overrides"])

            assert run_cli("instance-set", "orders", "10.0.0.5:8080", "--enabled", "false",
                           *s).returncode == 0  # fmt: skip
            wait_until(lambda: overrides() == 1, 10, 0.1, "the drain counted")
            cleared = run_cli("instance-set", "orders", "10.0.0.5:8080", "--clear", *s)
            assert cleared.returncode == 0, cleared
            listed = run_cli("instances", "orders", "--json", *s)
            assert json.loads(listed.stdout)[0]["enabled"] is True, listed.stdout
            text = run_cli("stats", *s).stdout
            usage = next(line for line in text.splitlines() if line.startswith("usage"))
            snap = run_cli("snapshot", "save", "--data-dir", str(data), "--out",
                           str(tmp_path / "x.snap"))  # fmt: skip
            assert snap.returncode == 0, snap
            assert overrides() == 0 and "0 operator overrides" in usage, (
                f"after --clear, `meshreg stats` still reports the override: {usage!r}"
            )
            assert "0 instance override(s)" in snap.stdout, (
                f"after --clear, the snapshot says it holds an override: {snap.stdout!r}"
            )
    finally:
        node.stop()
        node.cleanup()
