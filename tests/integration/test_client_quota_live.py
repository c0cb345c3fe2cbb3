"""Per-client limits on a real keyed node: a key's instance quota, expensive reads' rate,
the write rate."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import NodeProcess, RawDealer, raw_request, service_owned_by, wait_until
from test_security import Keys

from meshreg import Client, ResourceExhaustedError


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return Keys(tmp_path)


@pytest.fixture
def limited_node(keys: Keys, tmp_path: Path, start_node: Callable[..., NodeProcess]) -> NodeProcess:
    config = tmp_path / "node.toml"
    config.write_text(
        "[limits]\nmax_instances_per_client = 3\nread_rate_per_client = 5\n"
        "write_rate_per_client = 20\n"
    )
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
    # a time-out shorter than the node's wait (1/5 s a read): the refusal is the answer
    with keys.client("reader", limited_node.address, timeout=0.15) as reader:
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
    # with the time for it, the client waits what the node says and is served
    with keys.client("reader", limited_node.address, timeout=5.0) as patient:
        for _ in range(30):  # 10 of burst, 20 more at 5/s: about 4 s
            assert patient.services() is not None
    assert stats(keys, limited_node)["reads_throttled"] >= 15


def test_writes_are_rate_limited_per_key_and_the_client_waits(
    keys: Keys, tmp_path: Path, start_node: Callable[..., NodeProcess]
) -> None:
    """``write_rate_per_client = 20`` (burst 40): a refused write changes nothing and says
    when to retry (``error.retry_after``); the Python client sends it again then, so a
    caller with the time is served, at the rate."""
    config = tmp_path / "writes.toml"
    config.write_text("[limits]\nwrite_rate_per_client = 20\n")
    node = start_node("--key", keys.key("cluster"), "--acl", str(keys.acl), "--config",
                      str(config), curve=keys.curve("cluster"))  # fmt: skip
    body = {"v": 1, "op": "register", "namespace": "public", "group": "DEFAULT_GROUP",
            "service": "orders-raw", "port": 1, "cluster": "DEFAULT"}  # fmt: skip
    curve = keys.curve("app")
    refused = None
    for n in range(60):  # one connection per request: the key is the client, not the socket
        reply = raw_request(node.port, {**body, "id": n, "ip": f"10.1.0.{n}"}, 2.0, curve)
        if not reply["ok"]:
            refused = (n, reply["error"])
            break
    assert refused is not None, "60 registers in a row were all taken (burst 40)"
    n, error = refused
    assert 38 <= n <= 50, refused  # the burst, and what refilled meanwhile
    assert error["name"] == "RESOURCE_EXHAUSTED" and 0 < error["retry_after"] <= 0.1, error
    assert "write_rate_per_client" in error["message"] and "nothing was applied" in error["message"]
    listed = raw_request(node.port, {"v": 1, "id": 99, "op": "instances", "namespace": "public",
                         "group": "DEFAULT_GROUP", "service": "orders-raw"}, 2.0,
                         curve)["result"]["instances"]  # fmt: skip
    assert len(listed) == n and f"10.1.0.{n}" not in {i["ip"] for i in listed}
    assert stats(keys, node)["writes_throttled"] >= 1
    # the client waits what the node says: 60 registrations, 20 past the burst, all made
    with keys.client("app", node.address, timeout=5.0) as app:
        for k in range(60):
            app.register("orders", f"10.0.1.{k}", 8080)
        assert len(app.instances("orders")) == 60
    assert stats(keys, node)["writes_throttled"] >= 2


def test_writes_on_a_node_without_a_key_are_limited_per_connection(
    tmp_path: Path, start_node: Callable[..., NodeProcess]
) -> None:
    """No key, no client identity: the connection is the client (as for the read rate);
    config writes count as writes; the client waits and every write is made."""
    config = tmp_path / "writes.toml"
    config.write_text("[limits]\nwrite_rate_per_client = 20\n")
    node = start_node("--config", str(config))
    with Client(node.address, timeout=5.0) as client:
        for k in range(50):
            client.config_publish(f"cfg{k % 3}", f"v{k}")
        assert client.config_get("cfg2").content == "v47"
    served = raw_request(node.port, {"v": 1, "id": 1, "op": "stats"}, 2.0)["result"]
    assert served["writes_throttled"] >= 1 and served["limits"]["write_rate_per_client"] == 20


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


def test_forwarded_writes_count_at_the_node_they_arrived_at_only(
    tmp_path: Path, start_cluster: Callable[..., list[NodeProcess]]
) -> None:
    """Two nodes without a key, ``write_rate_per_client = 20``: 60 registers through A, each
    on a fresh connection (a client of its own), of a service B is responsible for: A
    forwards them all to B over one peer connection.  B serves forwards as the cluster's
    (runtime/node: NODE, never limited); counted as one client, that connection would have
    its forwards refused past a burst of 40.  Every write is made."""
    config = tmp_path / "writes.toml"
    config.write_text("[limits]\nwrite_rate_per_client = 20\n")
    a, b = start_cluster(2, "--config", str(config))
    service = service_owned_by(b.address, [a.address, b.address], "fwd")
    body = {"v": 1, "op": "register", "namespace": "public", "group": "DEFAULT_GROUP",
            "service": service, "port": 1, "cluster": "DEFAULT"}  # fmt: skip
    wait_until(lambda: raw_request(a.port, {**body, "id": 0, "ip": "10.2.0.250"}, 2.0)["ok"],
               15.0, what="a first register through A (the members up)")  # fmt: skip
    replies = [raw_request(a.port, {**body, "id": n, "ip": f"10.2.0.{n}"}, 5.0) for n in range(60)]
    assert all(r["ok"] for r in replies), [r["error"] for r in replies if not r["ok"]][:2]
    stats_b = raw_request(b.port, {"v": 1, "id": 1, "op": "stats"}, 2.0)["result"]
    assert stats_b["writes_throttled"] == 0 and stats_b["limits"]["write_rate_per_client"] == 20


def test_the_write_rate_is_judged_before_the_entries_and_bad_bodies_still_get_their_error(
    tmp_path: Path, start_node: Callable[..., NodeProcess]
) -> None:
    """review84 F5: the rate is judged on the decoded body, before its entries are checked
    (a refused flood cost the node as much as an accepted one): a batch of bad entries
    takes its tokens, and the next is refused whatever its entries; bodies that are not a
    write (not a map, an op that is not a string) get their own error, never INTERNAL."""
    config = tmp_path / "writes.toml"
    config.write_text("[limits]\nwrite_rate_per_client = 5\n")
    node = start_node("--config", str(config))
    conn = RawDealer(node.port)  # one connection: one bucket (no key)
    try:
        junk = [{"nonsense": k} for k in range(10)]  # burst 10: taken, then refused
        first = conn.call("register_batch", namespace="public", instances=junk)
        assert first["ok"] and all(r is not None for r in first["result"]["results"]), first
        again = conn.call("register_batch", namespace="public", instances=junk)
        assert again["error"]["name"] == "RESOURCE_EXHAUSTED", again
        assert again["error"]["retry_after"] > 0 and again["error"]["rate"] == 5, again
    finally:
        conn.close()
    for body, name in (([1, 2], "MALFORMED"), ({"v": 1, "id": 3, "op": ["register"]},
                                                "UNKNOWN_OP")):  # fmt: skip
        reply = raw_request(node.port, body, 2.0)  # type: ignore[arg-type]
        assert reply["error"]["name"] == name, (body, reply)
