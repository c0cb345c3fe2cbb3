"""The registry scenarios' convergence judgment on made-up samples (no namespaces: runs
everywhere): a window is converged when its last sample answered before the next fault
began is; a sample still in flight when that fault began (cut by a SIGKILL) says nothing
about it (test_config_owner_paused_then_node_killed_after_ack failed once in .ci/run on
such a sample: n1 converged for 3 s after its pause, then a sample sent 20 ms before the
kill timed out)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from scenarios import Run, Settings, Window


def _run(tmp_path: Path, samples: list[list[dict]], windows: list[Window]) -> Run:
    run = Run.__new__(Run)  # no lab: only what analyze() reads
    run.scenario, run.seed, run.s, run.origin = "made-up", 1, Settings(nodes=1), 0.0
    run.workdir, run.samples, run.windows = tmp_path, samples, windows
    run.instances, run.restarts, run.notes, run.events = {}, [], [], []
    run.judge_from, run.extra_violations, run.dereg_replies = float("inf"), [], []
    run.lab = SimpleNamespace(procs=[])  # the report tails node logs: none here
    return run


def _sample(t0: float, t1: float, ok: bool = True) -> dict:
    return {"t0": t0, "t1": t1, "ok": ok, "ready": True, "members": {}, "inst": {}}


def _no_converge(run: Run) -> list[str]:
    return [v.detail for v in run.analyze().violations if v.kind == "no-converge"]


def test_a_sample_cut_by_the_next_fault_does_not_count_against_the_window(
    tmp_path: Path,
) -> None:
    good = [_sample(10.0 + 0.15 * i, 10.0 + 0.15 * i + 0.001) for i in range(20)]
    cut = _sample(13.34, 14.34, ok=False)  # sent just before the kill, timed out after it
    after = [_sample(15.0, 15.001)]
    windows = [Window("pause n1 4s", 5.0, 10.0, {0}), Window("kill n1", 13.35, 14.5, {0})]
    assert _no_converge(_run(tmp_path, [[*good, cut, *after]], windows)) == []


def test_a_window_whose_last_answered_sample_is_not_converged_fails(tmp_path: Path) -> None:
    good = [_sample(10.0 + 0.15 * i, 10.0 + 0.15 * i + 0.001) for i in range(20)]
    bad = _sample(13.2, 13.25, ok=False)  # answered (an error) before the next fault
    after = [_sample(15.0, 15.001)]
    windows = [Window("pause n1 4s", 5.0, 10.0, {0}), Window("kill n1", 13.35, 14.5, {0})]
    found = _no_converge(_run(tmp_path, [[*good, bad, *after]], windows))
    assert len(found) == 1 and "pause n1 4s" in found[0]
