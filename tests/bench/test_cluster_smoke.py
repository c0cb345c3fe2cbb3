"""The scenarios only run when named run end to end: ``cluster`` and ``catchup`` (real
nodes), ``replication`` and ``beatloop`` (in one process), each in a small ``--quick`` form.

Figures are not asserted (performance is measured in bench/, never in a test); this checks
that every table row is there, that nothing was lost, and that every process is stopped.
"""

from __future__ import annotations

import sys

import pytest
from bench_runner import run_bench


@pytest.mark.timeout(300)
def test_quick_cluster_and_catchup_run(tmp_path):
    # 1 s watched after the kill and the restart; catchup's peer time-out 1 s (3 s by
    # default), so that the survivors see its victim down at once
    args = ["cluster", "catchup", "--quick", "--changes", "10", "--instances", "10"]
    args += ["--observe", "1", "--services", "2", "--peer-timeout", "1"]
    doc, out = run_bench(tmp_path, args, 280)
    cluster = doc["results"]["cluster"]
    assert [r["label"] for r in cluster["propagation"]] == ["single node", "3-node cluster"]
    assert all(r["changes_measured"] == 10 and not r["timeouts"] for r in cluster["propagation"])
    kill = cluster["kill"]
    assert kill["kill"]["all_survivors_see_down_s"] is not None
    assert not kill["kill"]["ever_missing"] and kill["restart"]["ready_s"] is not None
    assert "p90 ms" in out and "restart: every survivor sees it up and ready" in out
    rows = [r["measure"] for r in doc["results"]["catchup"]["rows"]]
    assert rows[0] == "register 20 through node A" and len(rows) == 5


@pytest.mark.timeout(120)
def test_quick_in_process_scenarios_run(tmp_path):
    """Also ``python -m bench.NAME``: the same as ``python -m bench NAME`` (here with a
    second scenario named after it)."""
    args = ["beatloop", "--quick", "--deltas", "500", "--beats", "500"]
    doc, out = run_bench(tmp_path, args, 100, [sys.executable, "-m", "bench.replication"])
    modes = [(r["mode"], r["applied"]) for r in doc["results"]["replication"]["rows"]]
    assert modes == [("one per message", 500), ("batched (256 deltas / 256 KiB)", 500)]
    loop = doc["results"]["beatloop"]["rows"][0]
    assert loop["beats"] == 500 and loop["node_us_per_beat"] > 0
    assert "CPU per message" in out
