"""The issue-12 configuration-center benchmark runs end to end (``python -m bench config
--quick``): a 3-node cluster with a data directory each, and etcd's 3 members beside it
where etcd and grpcio are installed.

Figures are not asserted (performance is measured in bench/, never in a test); this checks
that every row is measured without errors or losses, that the listener heard every change,
that the side-by-side table is printed, and that every process is stopped.
"""

from __future__ import annotations

import importlib.util
import shutil

import pytest
from bench_runner import run_bench

# the etcd half runs only where bench/baselines.py's etcd_missing() would find etcd and grpcio
NO_ETCD = shutil.which("etcd") is None or importlib.util.find_spec("grpc") is None


@pytest.mark.timeout(60)
def test_quick_config_runs(tmp_path):
    doc, out = run_bench(tmp_path, ["config", "--quick"], 50)
    result = doc["results"]["config"]
    systems = ["meshreg"] if NO_ETCD else ["meshreg", "etcd"]
    for system in systems:
        rows = result[system]["rows"]
        assert [r["measure"] for r in rows] == ["publish max", "get K"], rows
        for r in rows:
            assert r["ok"] > 0 and r["errors_total"] == 0 and r["lost"] == 0, r
        listen = result[system]["listener"]
        assert listen["notify_ms"]["n"] == listen["changes"] == 20, listen
        assert listen["ack_ms"]["n"] == 20 and not listen["timeouts"], listen
    assert result["meshreg"]["data_ids"] == 30
    if NO_ETCD:
        assert "etcd" not in result and "etcd:" in result["skipped"][0]
    else:
        assert result["etcd"]["members"] == 3 and result["skipped"] == []
    assert "meshreg/etcd" in out and "Nacos 2.0" in out and "kernel" in out
    assert "config publish >= 2,500/s" in out  # the targets table


# run from the repository root in a subprocess: "bench" in a test's process is tests/bench
RATES_CHECK = """
import argparse
from bench.common import parse_rates
from bench.config import load_rows

asked = []

def measure(verb, loaders, rate):
    asked.append((verb, loaders, rate))
    return {"ops_per_second": 1000.0 if rate is None else rate, "p99_ms": 1.0}

o = argparse.Namespace(quick=False, window=64, rate=2500.0, clients=3, repeat=1,
                       rates=parse_rates("500, 1_000"))
rows = load_rows(o, lambda _: None, "etcd", 3, measure)
assert [r["measure"] for r in rows] == [
    "publish max", "publish at 50%", "publish paced", "publish paced 500",
    "publish paced 1000", "get 1", "get K"], rows
assert [a for a in asked if a[0] == "put"] == [
    ("put", 3, None), ("put", 3, 500.0), ("put", 3, 2500.0), ("put", 3, 500.0),
    ("put", 3, 1000.0)], asked
assert rows[4]["workload"] == "put paced at 1,000/s", rows[4]
o.rates = None  # not given: the rows as before
assert len(load_rows(o, lambda _: None, "meshreg", 3, measure)) == 5
for bad in ("", "0", "fast", "500,-1"):
    try:
        parse_rates(bad)
    except argparse.ArgumentTypeError:
        continue
    raise AssertionError(f"{bad!r} accepted")
print("ok")
"""


@pytest.mark.timeout(60)
def test_rates_add_one_paced_row_per_rate():
    """``--rates`` (the knee): after the full run's rows, one paced row per rate, at that
    rate; not given, the rows as before; a bad list is refused (no process started)."""
    import subprocess
    import sys

    from bench_runner import ROOT

    proc = subprocess.run([sys.executable, "-c", RATES_CHECK], cwd=ROOT, capture_output=True,
                          text=True, timeout=50)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr
