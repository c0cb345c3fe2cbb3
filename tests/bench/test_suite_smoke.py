"""The benchmark suite runs end to end (``bin/meshreg-bench --quick``, with short rows and
small sizes: a smoke run, not a measurement) and writes its results.

Figures are not asserted (performance is measured in bench/, never in a
test); this checks that every benchmark starts its processes, measures
something, stops everything and writes a well-formed JSON result.
"""

from __future__ import annotations

import glob
import os

import pytest
from bench_runner import ROOT, run_bench

# short rows, small sizes, 1 s of watching after the failover's kill and restart, a light
# background load (the same code path as the default 20,000 beats/s and 5,000 changes/s)
SHORT = "--quick --no-peers --clients 1 --seconds 0.3 --warmup 0.1 --sizes 2000 --observe 1"
SHORT += " --changes 10 --warmup-changes 2 --load 2000 --write-load 1000"


@pytest.mark.timeout(420)
def test_quick_suite_runs_every_benchmark(tmp_path):
    doc, out = run_bench(
        tmp_path,
        SHORT.split(),
        400,
        command=[os.path.join(ROOT, "bin", "meshreg-bench")],
    )
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
