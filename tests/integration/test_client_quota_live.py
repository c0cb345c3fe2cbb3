"""Per-client limits on a real keyed node: a key's instance quota, expensive reads' rate."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import NodeProcess, raw_request
from test_security import Keys

from meshreg import ResourceExhaustedError


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return Keys(tmp_path)


@pytest.fixture
def limited_node(keys: Keys, tmp_path: Path, start_node: Callable[..., NodeProcess]) -> NodeProcess:
    config = tmp_path / "node.toml"
    config.write_text("[limits]\nmax_instances_per_client = 3\nread_rate_per_client = 5\n")
    return start_node(
        "--key",
        keys.key("cluster"),
        "--acl",
        str(keys.acl),
        "--config",
        str(config),
        curve=keys.curve("cluster"),
    )


def test_a_key_over_its_instance_quota_is_refused_and_changes_nothing(
    keys: Keys, limited_node: NodeProcess
) -> None:
    with keys.client("app", limited_node.address) as app:
        for n in range(3):
            app.register("orders", f"10.0.0.{n}", 8080)
        app.register("orders", "10.0.0.0", 8080)  # re-registering one it holds is fine
        with pytest.raises(ResourceExhaustedError) as info:
            app.register("orders", "10.0.0.9", 8080)
        text = str(info.value)
        assert "orders-app" in text and "max_instances_per_client = 3" in text
        assert len(app.instances("orders")) == 3  # the refused one is not there
        app.deregister("orders", "10.0.0.1", 8080)
        app.register("orders", "10.0.0.9", 8080)  # a deregistration made room
        assert {i.ip for i in app.instances("orders")} == {"10.0.0.0", "10.0.0.2", "10.0.0.9"}
        assert stats(keys, limited_node)["client_instances_held"] == 3
        assert stats(keys, limited_node)["client_quota_refused"] == 1
    # the client deregistered its instances on close: they no longer count
    assert stats(keys, limited_node)["client_instances_held"] == 0


def stats(keys: Keys, node: NodeProcess) -> dict:
    return raw_request(node.port, {"v": 1, "id": 1, "op": "stats"}, 2.0, keys.curve("cluster"))[
        "result"
    ]


def test_expensive_reads_are_rate_limited_per_key(keys: Keys, limited_node: NodeProcess) -> None:
    with keys.client("reader", limited_node.address) as reader:
        refused = None
        for _ in range(50):  # burst is 10: the limit is met well before 50
            try:
                reader.services()
            except ResourceExhaustedError as exc:
                refused = exc
                break
        assert refused is not None, "50 services calls in a row were all served"
        assert "read_rate_per_client" in str(refused) and "retry in" in str(refused)
        assert reader.instances("orders") == []  # the hot path is not limited
    with keys.client("app", limited_node.address) as app:
        assert app.services() is not None  # another key has its own budget


def test_a_key_gets_its_share_of_the_session_table_whatever_its_connections(
    keys: Keys, tmp_path: Path, start_node: Callable[..., NodeProcess]
) -> None:
    """Per key, not per connection (review finding F-sessflood): each raw request below
    is a new connection, and the key's third session is still refused; the key's
    Client then registers all the same, on per-instance beats."""
    config = tmp_path / "sessions.toml"
    config.write_text("[limits]\nmax_sessions = 32\n")  # a share of 2
    node = start_node(
        "--key", keys.key("cluster"), "--acl", str(keys.acl), "--config", str(config),
        curve=keys.curve("cluster"),
    )  # fmt: skip
    answers = [
        raw_request(node.port, {"v": 1, "id": 1, "op": "session_open"}, 2.0, keys.curve("app"))
        for _ in range(3)
    ]
    assert [a["ok"] for a in answers] == [True, True, False]
    message = answers[2]["error"]["message"]
    assert "client 'orders-app'" in message and "max_sessions_per_client = 2" in message
    with keys.client("app", node.address, sessions=True) as app:
        app.register("orders", "10.0.0.1", 8080)
        assert [i.ip for i in app.instances("orders")] == ["10.0.0.1"]
    assert stats(keys, node)["rejected_quota"]["max_sessions_per_client"] >= 2
