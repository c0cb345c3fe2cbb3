"""Quotas and paged reads end to end: a real node with a [limits] table, the Python client."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import FAST_TIMINGS
from helpers import NodeProcess

from meshreg import Client
from meshreg.errors import ErrorCode, ServerError

FAST_CLIENT = {"beat_interval": 0.2, "timeout": 3.0, "attempt_timeout": 0.5}


def test_a_quota_rejection_reaches_the_client_with_its_message_and_paging_follows_cursors(
    start_node: Callable[..., NodeProcess], tmp_path: Path
) -> None:
    config = tmp_path / "node.toml"
    config.write_text(
        "[limits]\nmax_instances_per_service = 3\nmax_metadata_bytes = 4096\n"
        "max_metadata_bytes_per_namespace = 4096\n"
    )
    node = start_node(*FAST_TIMINGS, "--config", str(config))
    with Client([node.address], **FAST_CLIENT) as c:
        for i in range(3):
            c.register("orders", f"10.0.0.{i + 1}", 8080)
        with pytest.raises(ServerError) as caught:
            c.register("orders", "10.0.0.9", 8080)
        err = caught.value
        assert err.code == ErrorCode.RESOURCE_EXHAUSTED
        assert "RESOURCE_EXHAUSTED" in str(err)
        for words in (
            "service public/DEFAULT_GROUP/orders has 3 instances",
            "[limits] max_instances_per_service = 3",
            "deregister instances of it, or raise [limits] max_instances_per_service",
        ):
            assert words in err.detail, err.detail
        assert {i.ip for i in c.instances("orders", healthy_only=False)} == {
            "10.0.0.1",
            "10.0.0.2",
            "10.0.0.3",
        }  # the refused one changed nothing
        c.deregister("orders", "10.0.0.3", 8080)
        c.register("orders", "10.0.0.9", 8080)  # room again

        # five more services: listed in pages of two, the client follows the cursors
        for name in ("b-svc", "c-svc", "d-svc", "e-svc", "f-svc"):
            c.register(name, "10.0.1.1", 8080)
        names = ["b-svc", "c-svc", "d-svc", "e-svc", "f-svc", "orders"]
        assert c.services(page_size=2) == names
        assert c.services() == names
        first = c._call("services", {"namespace": "public", "page_size": 2})
        assert first.services == ("b-svc", "c-svc")  # a ServicesPage (client/messages.py)
        assert first.count == 6 and first.next_cursor is not None

        stats = c.stats()
        assert stats["rejected_quota"] == {"max_instances_per_service": 1}
        assert stats["limits"]["max_instances_per_service"] == 3
        assert stats["usage"]["services"] == 6 and stats["usage"]["instances"] == 8
        assert stats["errors"].get("RESOURCE_EXHAUSTED") == 1
    assert "RESOURCE_EXHAUSTED" in node.log()  # logged (rate-limited) as a refusal
