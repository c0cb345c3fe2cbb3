"""The issue-10 benchmarks run end to end (``python -m bench curve attacks --quick``, with
short rows and attacks, one node per kind for every attack: a smoke run, not a measurement).

Figures are not asserted (performance is measured in bench/, never in a test);
this checks that both start their processes, measure something, stop everything
and write well-formed JSON results.
"""

from __future__ import annotations

import glob

import pytest
from bench_runner import run_bench


@pytest.mark.timeout(300)
def test_quick_curve_and_attacks_run(tmp_path):
    args = ["curve", "attacks", "--quick", "--clients", "1", "--changes", "6", "--seconds", "0.2",
            "--warmup", "0.05", "--settle", "0", "--sub-seconds", "0.3", "--slow-seconds", "0.3",
            "--junk-seconds", "0.2", "--flood-seconds", "0.3", "--share-nodes"]  # fmt: skip
    doc, out = run_bench(tmp_path, args, 280)
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
    assert ids == {"H1", "H3", "H4", "M1", "M4", "M2", "M6", "F2"}
    for r in attacks:
        assert r["alive"], r
        assert r["rss_mb"]["peak"] >= r["rss_mb"]["before"] > 0, r
        assert r["ping_ms"]["n"] > 0, r
    # with a key, a stranger cannot even connect; a client key cannot speak the peer protocol
    h1 = {r["target"]: r for r in attacks if r["id"] == "H1"}
    assert h1["stranger key"]["replies"] == {"no answer": 2}, h1["stranger key"]
    assert h1["client key"]["replies"] == {"PERMISSION_DENIED": 2}, h1["client key"]
    # F2: the burst registered, evicted on every node, each node's stalls counted (a figure)
    (f2,) = [r["f2"] for r in attacks if r["id"] == "F2"]
    assert f2["instances"] == f2["wanted"] == 2000 and f2["lapse_s"] > 0, f2
    assert len(f2["stalls"]) == 3 and all(isinstance(n, int) for n in f2["stalls"]), f2
    assert "stalls " in out and "evicted everywhere in" in out
    for name in results:
        assert glob.glob(str(tmp_path / f"{name}-*.json")), name
