"""The benchmark suite runs end to end (``bin/meshreg-bench --quick``) and writes its results.

Figures are not asserted (performance is measured in bench/, never in a
test); this checks that every benchmark starts its processes, measures
something, stops everything and writes a well-formed JSON result.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.timeout(420)
def test_quick_suite_runs_every_benchmark(tmp_path):
    env = {
        **os.environ,
        "MESHREG_BENCH_RESULTS": str(tmp_path),
        "PYTHON": sys.executable,
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
    }
    proc = subprocess.run(
        [os.path.join(ROOT, "bin", "meshreg-bench"), "--quick", "--no-peers", "--clients", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    suites = glob.glob(str(tmp_path / "suite-*.json"))
    assert len(suites) == 1, out[-3000:]
    with open(suites[0], encoding="utf-8") as fh:
        doc = json.load(fh)
    assert doc["failed"] == []
    assert doc["machine"]["nproc"] >= 1 and doc["machine"]["meshreg"]
    results = doc["results"]
    assert set(results) == {
        "baselines",
        "heartbeat",
        "register",
        "propagation",
        "failover",
        "scale",
    }
    beat = next(r for r in results["heartbeat"]["rows"] if r["workload"] == "meshreg beat, 1 node")
    assert beat["ok"] > 0 and beat["errors"] == 0 and beat["lost"] == 0, beat
    register = [
        (r.get("workload"), r["ok"], r["errors"], r.get("error_names"))
        for r in results["register"]["rows"]
    ]
    assert all(ok > 0 and errors == 0 for _, ok, errors, _ in register), register
    assert results["propagation"]["rows"][-1]["changes_measured"] > 0
    assert results["failover"]["kill"]["all_survivors_see_down_s"] is not None
    assert results["scale"]["rows"][0]["beats_per_second"] > 0
    assert "etcd" in results["baselines"]["skipped"][0]
    for name in results:  # one file per benchmark too
        assert glob.glob(str(tmp_path / f"{name}-*.json")), name
    assert "== targets" in out
