"""The chaos and benchmark smoke tests run one at a time under pytest-xdist (tests/conftest.py).

Checked from outside, the way the suite runs: a nested ``pytest -n 2`` over the chaos
suite's judge tests (in the group, no cluster started) and some unit tests, reading which
worker ran each test.  pytest 9.2 made xdist's own ``xdist_group`` mark a silent no-op
(pytest-dev/pytest-xdist#1386): the group was split over both workers and nothing failed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import one_at_a_time

ROOT = Path(__file__).resolve().parent.parent
GROUPED = ("tests/chaos/test_registry_judge.py", "tests/chaos/test_config_judge.py")
OTHERS = ("tests/test_import_rules.py",)


def test_the_group_is_decided_by_the_test_directory() -> None:
    assert not one_at_a_time("tests/integration/test_cluster.py::test_x")
    assert one_at_a_time("tests/chaos/test_chaos.py::test_loss_and_delay")
    assert one_at_a_time("tests/bench/test_config_smoke.py::test_quick_config_runs")
    assert not one_at_a_time("tests/sim/test_distro_sim.py::test_random_faults_converge[1]")
    assert not one_at_a_time("tests/test_import_rules.py::test_no_import_cycle[core]")
    assert not one_at_a_time("tests/core/integration/test_x.py::test_y")  # only tests/<dir>/
    burst = "tests/review83/test_r83_tenant_burst_leaves_others_served.py"
    assert one_at_a_time(f"{burst}::test_a_tenant_burst")
    assert not one_at_a_time("tests/review83/test_r83_services_cursor_oracle.py::test_x")


def test_the_chaos_and_bench_tests_run_on_one_worker() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2", "-v",
         "-o", "addopts=", "--dist", "loadgroup", *GROUPED, *OTHERS],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    ran = re.findall(r"\[(gw\d+)\] \[\s*\d+%\] PASSED (\S+)", out.stdout)
    grouped = [(worker, test) for worker, test in ran if test.startswith(GROUPED)]
    others = [(worker, test) for worker, test in ran if not test.startswith(GROUPED)]
    assert len(grouped) >= 5 and len(others) >= 20, out.stdout[-3000:]
    workers = {worker for worker, _ in grouped}
    assert len(workers) == 1, f"the one-at-a-time group ran on {sorted(workers)}: {grouped}"
    # both workers ran something: the rest is spread, not queued behind the group
    assert {worker for worker, _ in others} - workers, others
