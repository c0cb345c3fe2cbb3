"""The issue-10 benchmarks run end to end (``python -m bench curve attacks --quick``).

Figures are not asserted (performance is measured in bench/, never in a test);
this checks that both start their processes, measure something, stop everything
and write well-formed JSON results.
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
def test_quick_curve_and_attacks_run(tmp_path):
    env = {**os.environ, "MESHREG_BENCH_RESULTS": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "curve", "attacks", "--quick", "--clients", "1",
         "--changes", "6"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    suites = glob.glob(str(tmp_path / "suite-*.json"))
    assert len(suites) == 1, out[-3000:]
    with open(suites[0], encoding="utf-8") as fh:
        doc = json.load(fh)
    assert doc["failed"] == []
    results = doc["results"]
    assert set(results) == {"curve", "attacks"}

    rows = {(r["workload"], r["security"]): r for r in results["curve"]["rows"]}
    for mode in ("plain", "CURVE"):
        for workload in ("raw zmq echo", "beat, 1 node", "register, 1 node, max"):
            row = rows[(workload, mode)]
            assert row["ok"] > 0 and row["errors"] == 0 and row["lost"] == 0, (workload, mode)
        assert results["curve"]["propagation"][mode]["changes_measured"] > 0
    assert "CURVE costs < 10% of beats/s" in out

    attacks = results["attacks"]["rows"]
    ids = {r["id"] for r in attacks}
    assert ids == {"H1", "H3", "H4", "M1", "M4", "M2", "M6"}
    for r in attacks:
        assert r["alive"], r
        assert r["rss_mb"]["peak"] >= r["rss_mb"]["before"] > 0, r
        assert r["ping_ms"]["n"] > 0, r
    # with a key, a stranger cannot even connect; a client key cannot speak the peer protocol
    h1 = {r["target"]: r for r in attacks if r["id"] == "H1"}
    assert h1["stranger key"]["replies"] == {"no answer": 2}, h1["stranger key"]
    assert h1["client key"]["replies"] == {"PERMISSION_DENIED": 2}, h1["client key"]
    for name in results:
        assert glob.glob(str(tmp_path / f"{name}-*.json")), name
