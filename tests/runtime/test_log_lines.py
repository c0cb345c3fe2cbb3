"""The node's health-change log line stays bounded when thousands expire at once."""

from meshreg.core.effects import ServiceChanged
from meshreg.model import InstanceId, ServiceKey
from meshreg.runtime.health_log import LOGGED_NAMES, some_names


def change(n_removed: int) -> ServiceChanged:
    removed = tuple(
        InstanceId(f"10.0.{i // 250}.{i % 250}", 80, "DEFAULT") for i in range(n_removed)
    )
    return ServiceChanged(
        ServiceKey("public", "DEFAULT_GROUP", "svc"), 1, 2, (), removed, "evicted"
    )


def test_few_names_are_all_listed():
    line = some_names(change(3))
    assert line.count(",") == 2 and "more" not in line


def test_a_mass_expiry_names_the_first_and_counts_the_rest():
    line = some_names(change(2000))
    assert line.count(":80") == LOGGED_NAMES
    assert line.endswith(f"and {2000 - LOGGED_NAMES} more")
