"""The issue-13 liveness benchmark runs end to end (``python -m bench liveness --quick``),
with short node and client timings (``--unhealthy-after 2 --check-interval 0.5
--beat-interval 0.5``) so that the warm-up and the SIGKILL expiry take seconds, not 20 s.

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
SHORT = ["--quick", "--seconds", "0.5", "--unhealthy-after", "2", "--check-interval", "0.5",
         "--beat-interval", "0.5"]  # fmt: skip


@pytest.mark.timeout(200)
def test_quick_liveness_runs_with_etcd_beside_the_session_row(tmp_path):
    """Every meshreg row, and (where installed) etcd holding the same keys on one lease per
    client process, in the same table as meshreg's session row, with the ratio column."""
    doc, out = run_bench(tmp_path, ["liveness", *SHORT, "--sizes", "1000", "--clients", "2"], 180)
    rows = doc["results"]["liveness"]["rows"]
    etcd_rows = [] if NO_ETCD else [("etcd", 2)]
    assert [(r["mode"], r["clients"]) for r in rows] == [
        ("session", 1),
        ("session", 2),
        *etcd_rows,
        ("beats", 2),
    ], rows
    for r in rows:
        assert "aborted" not in r, r
        assert r["register_failed"] == 0 and r["all_healthy"] and r["healthy_at_end"] == 1000, r
        assert r["rss_mb"] > 0 and r["node_cpu"] >= 0, r
    assert rows[0]["expiry_s"] is not None  # the SIGKILLed client's instances turned unhealthy
    assert all("expiry_s" not in r for r in rows[1:])  # --quick: the SIGKILL only once
    assert "kept alive by one client process" in out
    if NO_ETCD:
        assert "skipped etcd:" in out
    else:
        assert rows[2]["leases"] == 2
        assert "etcd/meshreg CPU / RSS / clients / register" in out
        assert " / " in out.split("\netcd ")[1]


@pytest.mark.skipif(NO_ETCD, reason="no etcd (apt-get install etcd-server) or no grpcio")
@pytest.mark.timeout(120)
def test_etcd_row_alone_and_its_lease_expiry(tmp_path):
    """``--only etcd``: no meshreg row; a SIGKILLed client's keys are deleted once its lease
    (TTL = --unhealthy-after, 2 s here, renewed every --beat-interval) runs out."""
    args = ["liveness", *SHORT, "--only", "etcd", "--sizes", "300", "--clients", "1"]
    doc, _ = run_bench(tmp_path, args, 100)
    rows = doc["results"]["liveness"]["rows"]
    assert [(r["mode"], r["clients"]) for r in rows] == [("etcd", 1)], rows
    assert rows[0]["all_healthy"] and rows[0]["expired_instances"] == 300, rows[0]
    assert rows[0]["expiry_s"] is not None and 0.5 <= rows[0]["expiry_s"] <= 30, rows[0]
    assert doc["results"]["liveness"]["etcd"]["lease_ttl_s"] == 2
