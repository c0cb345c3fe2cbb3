"""The issue-13 liveness benchmark runs end to end (``python -m bench liveness --quick``).

Figures are not asserted (performance is measured in bench/, never in a test);
this checks that it starts its processes, measures every row, stops everything
and writes well-formed JSON results.
"""

from __future__ import annotations

import pytest
from bench_runner import run_bench


@pytest.mark.timeout(300)
def test_quick_liveness_runs(tmp_path):
    doc, out = run_bench(tmp_path, ["liveness", "--quick"], 280)
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
