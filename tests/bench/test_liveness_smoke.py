"""The issue-13 liveness benchmark runs end to end (``python -m bench liveness --quick``).

Figures are not asserted (performance is measured in bench/, never in a test);
this checks that it starts its processes, measures every row, stops everything
and writes well-formed JSON results.
"""

from __future__ import annotations

import importlib.util
import shutil

import pytest
from bench_runner import run_bench

# etcd rows run only where bench/baselines.py's etcd_missing() would find etcd and grpcio
NO_ETCD = shutil.which("etcd") is None or importlib.util.find_spec("grpc") is None


@pytest.mark.timeout(300)
def test_quick_liveness_runs(tmp_path):
    doc, out = run_bench(tmp_path, ["liveness", "--quick", "--no-peers"], 280)
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
    assert "skipped etcd: not run (--no-peers)" in out


@pytest.mark.skipif(NO_ETCD, reason="no etcd (apt-get install etcd-server) or no grpcio")
@pytest.mark.timeout(200)
def test_etcd_row_beside_the_session_row(tmp_path):
    """etcd holds the same keys on one lease per client process, in the same table as
    meshreg's session row, with the ratio column."""
    args = ["liveness", "--quick", "--sizes", "1000", "--clients", "2", "--no-single", "--no-beats"]
    doc, out = run_bench(tmp_path, args, 180)
    rows = doc["results"]["liveness"]["rows"]
    assert [(r["mode"], r["instances"], r["clients"]) for r in rows] == [
        ("session", 1000, 2),
        ("etcd", 1000, 2),
    ]
    etcd = rows[1]
    assert "aborted" not in etcd, etcd
    assert etcd["register_failed"] == 0 and etcd["all_healthy"] and etcd["leases"] == 2, etcd
    assert etcd["healthy_at_end"] == 1000 and etcd["rss_mb"] > 0 and etcd["node_cpu"] >= 0
    assert "expiry_s" not in etcd  # --quick: the SIGKILL only in 1-client rows
    assert "etcd/meshreg CPU / RSS / clients / register" in out and " / " in out.split("\netcd ")[1]


@pytest.mark.skipif(NO_ETCD, reason="no etcd (apt-get install etcd-server) or no grpcio")
@pytest.mark.timeout(200)
def test_etcd_row_alone_and_its_lease_expiry(tmp_path):
    """``--only etcd``: no meshreg row; a SIGKILLed client's keys are deleted once its lease
    (TTL 15 s, renewed every 5 s) runs out."""
    args = ["liveness", "--quick", "--only", "etcd", "--sizes", "300", "--clients", "1"]
    doc, _ = run_bench(tmp_path, args, 180)
    rows = doc["results"]["liveness"]["rows"]
    assert [(r["mode"], r["clients"]) for r in rows] == [("etcd", 1)], rows
    assert rows[0]["all_healthy"] and rows[0]["expired_instances"] == 300, rows[0]
    assert rows[0]["expiry_s"] is not None and 5 <= rows[0]["expiry_s"] <= 35, rows[0]
