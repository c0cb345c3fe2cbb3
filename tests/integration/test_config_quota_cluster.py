"""Config quotas on a real 3-node cluster (review14a F3, review14b F3): a namespace's live
data ids are bounded by ``[config] max_configs_per_namespace`` on every node, whichever
node decides the create (each data id's responsible node); another namespace, updates and
deletes still go; a delete gives its slot back; ``meshreg stats`` shows the counts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import NodeProcess, run_cli, wait_until

from meshreg import Client
from meshreg.errors import ErrorCode, ServerError

LIMIT = 6


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path / "state"


def _counts(node: NodeProcess) -> dict[str, int]:
    out = run_cli("stats", "--json", "-s", node.address, "--timeout", "3")
    if out.returncode != 0:
        return {}
    return dict(json.loads(out.stdout)["config"]["configs_by_namespace"])


def _publishes(c: Client) -> bool:
    try:
        c.config_publish("probe", "x", namespace="warmup")
        return True
    except Exception:
        return False


def _refusal(c: Client, data_id: str, namespace: str) -> ServerError:
    with pytest.raises(ServerError) as info:
        c.config_publish(data_id, "x", namespace=namespace)
    return info.value


@pytest.mark.timeout(90)
def test_a_namespace_at_its_limit_is_refused_on_every_node_the_others_are_not(
    start_cluster: Callable[..., list[NodeProcess]], tmp_path: Path
) -> None:
    (tmp_path / "node.toml").write_text(f"[config]\nmax_configs_per_namespace = {LIMIT}\n")
    nodes = start_cluster(3, "--config", str(tmp_path / "node.toml"))
    clients = [Client([n.address], timeout=5) for n in nodes]
    try:
        wait_until(lambda: _publishes(clients[0]), 20, what="the cluster to accept writes")
        for i in range(LIMIT):  # through one node: forwarded to each data id's owner
            clients[0].config_publish(f"d{i}", "x", namespace="a")
        expected = {"a": LIMIT, "warmup": 1}
        wait_until(
            lambda: all(_counts(n) == expected for n in nodes),
            15,
            what=f"every node to count {expected}",
        )
        # 12 new data ids, through each node: their owners are all three nodes
        for k, c in enumerate(clients):
            for j in range(4):
                exc = _refusal(c, f"new{k}-{j}", "a")
                assert exc.code == ErrorCode.RESOURCE_EXHAUSTED, exc
                assert f"namespace 'a' holds {LIMIT} live configs" in exc.detail, exc.detail
                assert f"max_configs_per_namespace {LIMIT}" in exc.detail, exc.detail
        assert clients[2].config_publish("d0", "updated", namespace="a").revision == 2
        assert clients[1].config_publish("other", "x", namespace="b").revision == 1
        clients[2].config_delete("d1", namespace="a")
        # the delete counts on every node once it is there (acknowledged by a majority:
        # the owner of the next create may be the third node, so wait for all)
        expected = {"a": LIMIT - 1, "b": 1, "warmup": 1}
        wait_until(lambda: all(_counts(n) == expected for n in nodes), 15, what=str(expected))
        assert clients[0].config_publish("new0-0", "x", namespace="a").revision == 1
        text = run_cli("stats", "-s", nodes[1].address, "--timeout", "3").stdout
        assert f"the largest: a {LIMIT}, b 1, warmup 1" in text, text
        assert f"limit {LIMIT} per namespace" in text, text
    finally:
        for c in clients:
            c.close()
