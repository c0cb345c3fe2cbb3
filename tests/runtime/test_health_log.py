"""Health transitions are logged in a bounded number of lines per loop turn (M9)."""

from __future__ import annotations

import pytest

from meshreg.core.effects import InstanceView, ServiceChanged
from meshreg.model import InstanceId, ServiceKey
from meshreg.runtime.health_log import HealthLog


def change(service: int, reason: str, n: int = 1) -> ServiceChanged:
    key = ServiceKey("public", "G", f"svc-{service}")
    if reason == "evicted":
        removed = tuple(InstanceId(f"10.0.0.{i}", 80, "DEFAULT") for i in range(n))
        return ServiceChanged(key, 1, 2, (), removed, reason)
    views = tuple(
        InstanceView(f"10.0.0.{i}", 80, "DEFAULT", 1.0, True, False, {}) for i in range(n)
    )
    return ServiceChanged(key, 1, 2, views, (), reason)


@pytest.mark.parametrize(
    ("changes", "max_lines", "expected_named", "summary"),
    [
        ([change(i, "unhealthy") for i in range(3)], 5, 3, None),
        ([change(i, "evicted") for i in range(5)], 5, 5, None),
        (
            [change(i, "unhealthy", 2) for i in range(600)]
            + [change(i, "evicted", 3) for i in range(400)],
            20,
            20,
            "and 980 more services: 1160 instances unhealthy, 1200 evicted",
        ),
        ([change(0, "registered"), change(1, "replicated"), change(2, "updated")], 5, 0, None),
        (
            [change(i, "evicted") for i in range(3)],
            1,
            1,
            "and 2 more services: 0 instances unhealthy, 2 evicted",
        ),
    ],
)
def test_at_most_n_lines_then_one_summary(
    changes: list[ServiceChanged], max_lines: int, expected_named: int, summary: str | None
) -> None:
    log = HealthLog(max_lines)
    for c in changes:
        log.add(c)
    lines = log.lines()
    named = [line for line in lines if not line.startswith("and ")]
    assert len(named) == expected_named and len(lines) <= max_lines + 1
    assert all("(revision 2)" in line for line in named)
    assert (lines[-1] if summary is not None else None) == summary
    assert log.lines() == []  # a new turn starts empty


def test_a_line_names_the_service_the_transition_and_few_instances() -> None:
    log = HealthLog()
    log.add(change(7, "evicted", 2000))
    (line,) = log.lines()
    assert "svc-7" in line and ": evicted " in line and line.count(":80") == 10
    assert "and 1990 more" in line
