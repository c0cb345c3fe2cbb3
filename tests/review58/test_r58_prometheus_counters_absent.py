"""review58 F3 (low, monitoring): three counters the README lists as typed metrics are
missing from `meshreg stats --format prometheus` (no sample, no `# TYPE`) until their
first event: `meshreg_errors_total`, `meshreg_rejected_quota_total`,
`meshreg_config_rejected_total`.

README "Monitoring": "The typed metrics (`# HELP`, `# TYPE`; counters end in `_total` and
restart from 0 with the node)", table rows `meshreg_requests_total{op}`,
`meshreg_errors_total{code}` (counter), `meshreg_rejected_quota_total{reason}` (counter),
`meshreg_config_committed_total`, `meshreg_config_rejected_total{reason}` (counter);
"Useful alerts: ... `rate(meshreg_errors_total[5m])`".

Observed (3 nodes from deploy/node.toml, the metrics timer's command
`meshreg stats --format prometheus --timeout 5 --output F`): of the 51 names the README
lists, 48 present; these 3 absent altogether on a node that has refused nothing yet
(`meshreg_subscriptions_refused_total` beside them has its zeros:
{reason="denied"} 0, {reason="full"} 0, {reason="invalid"} 0).  After one NOT_FOUND the
series appears at 1.  meshreg/metrics.py skips a family without samples.  Consequence:
the alert the README suggests misses the first refusals of each code (Prometheus's
rate() needs two samples of a series: a series born at 1 shows no increase), and an
alert `absent(meshreg_errors_total)`-style or a dashboard query on the family finds
nothing on a healthy node; Prometheus's own guidance is to export known counters at 0.

Expected: every counter family of the README's table present with `# TYPE`, a zero
sample (unlabelled, or per known label value) before its first event.
"""

from __future__ import annotations

import pytest
from helpers import run_cli

LISTED_COUNTERS = ("meshreg_errors_total", "meshreg_rejected_quota_total",
                   "meshreg_config_rejected_total")  # fmt: skip


@pytest.mark.timeout(60)
def test_every_listed_counter_is_exported_before_its_first_event(start_node, tmp_path) -> None:
    node = start_node("--data-dir", str(tmp_path / "d"))
    out_file = tmp_path / "meshreg.prom"
    out = run_cli("stats", "--format", "prometheus", "--timeout", "5", "--output",
                  str(out_file), "-s", node.address)  # fmt: skip
    assert out.returncode == 0, out
    text = out_file.read_text()
    assert "# TYPE meshreg_subscriptions_refused_total counter" in text  # the zeros are there
    missing = [
        name for name in LISTED_COUNTERS
        if f"# TYPE {name} counter" not in text
        or not any(line.startswith((f"{name}{{", f"{name} ")) for line in text.splitlines())
    ]  # fmt: skip
    assert not missing, (
        f"README 'Monitoring' lists these typed counters; the metrics file of a node that "
        f"refused nothing yet has neither their # TYPE nor a sample: {missing}"
    )
