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
