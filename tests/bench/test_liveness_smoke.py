"""The issue-13 liveness benchmark runs end to end (``python -m bench liveness --quick``).

Figures are not asserted (performance is measured in bench/, never in a test);
this checks that it starts its processes, measures every row, stops everything
and writes well-formed JSON results.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.timeout(300)
def test_quick_liveness_runs(tmp_path):
    env = {**os.environ, "MESHREG_BENCH_RESULTS": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "liveness", "--quick"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    suites = glob.glob(str(tmp_path / "suite-*.json"))
    assert len(suites) == 1, out[-3000:]
    with open(suites[0], encoding="utf-8") as fh:
        doc = json.load(fh)
    assert doc["failed"] == []
    rows = doc["results"]["liveness"]["rows"]
    assert [(r["mode"], r["clients"]) for r in rows] == [
        ("session", 1),
        ("session", 4),
        ("beats", 4),
    ]
    for r in rows:
        assert "aborted" not in r, r
        assert r["register_failed"] == 0 and r["all_healthy"], r
        assert r["rss_mb"] > 0 and r["node_cpu"] >= 0, r
    assert rows[0]["expiry_s"] is not None  # the SIGKILLed client's instances turned unhealthy
    assert "kept alive by one client process" in out
