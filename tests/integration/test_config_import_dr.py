"""Disaster recovery with real processes (issue 12, review11 F-revreset): a 3-node cluster
rebuilt from an export on empty data directories keeps each data id's revision, so an
application client that kept running through the outage (its revision floor at the old
cluster's revisions) reads the restored configs and hears the next change without a
restart.  Before the fix the import wrote every data id at revision 1 again: the running
client's reads were refused ("you have seen 5") and its listener never fired."""

from __future__ import annotations

import json
import queue
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CLUSTER_TIMINGS
from helpers import HOST, NodeProcess, free_port_pair, run_cli, start_all, wait_until

from meshreg import Client
from meshreg.errors import ErrorCode, MeshregError, ServerError

pytestmark = pytest.mark.timeout(150)


def cluster(ports: list[int], data: Path) -> list[NodeProcess]:
    """Three nodes on ``ports`` (the same addresses after a rebuild) with data dirs in
    ``data``; returned once each answers and its config plane is ready."""
    peers = [a for p in ports for a in ("--peer", f"{HOST}:{p}")]
    nodes = [
        NodeProcess(*CLUSTER_TIMINGS, *peers, "--data-dir", str(data / f"node{i}"), port=p)
        for i, p in enumerate(ports)
    ]
    start_all(nodes)
    for node in nodes:
        wait_until(lambda n=node: ready(n), 20, what=f"config plane of {node.address} ready")
    return nodes


def ready(node: NodeProcess) -> bool:
    out = run_cli("stats", "-s", node.address, "--json", "--timeout", "2")
    return out.returncode == 0 and bool(json.loads(out.stdout)["config"]["ready"])


def cli(node: NodeProcess, *args: str) -> str:
    out = run_cli("config", *args, "-s", node.address, "--timeout", "10")
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out.stdout


@pytest.fixture
def nodes_to_clean() -> Iterator[list[NodeProcess]]:
    started: list[NodeProcess] = []
    yield started
    for node in started:
        node.cleanup()


def test_a_cluster_rebuilt_from_an_export_keeps_revisions_for_a_running_client(
    tmp_path: Path, nodes_to_clean: list[NodeProcess]
) -> None:
    ports = [free_port_pair() for _ in range(3)]
    old = cluster(ports, tmp_path / "old")
    nodes_to_clean.extend(old)
    addresses = [n.address for n in old]
    for n in range(1, 6):
        cli(old[n % 3], "publish", "db.url", "--content", f"jdbc:v{n}")
    for n in range(1, 4):
        cli(old[0], "publish", "flags.json", "--content", f'{{"n": {n}}}', "--type", "json")
    cli(old[2], "publish", "old.flag", "--content", "on")
    cli(old[2], "delete", "old.flag")  # a tombstone at 2: exported, "absent" in the new cluster
    calls: queue.Queue[tuple[str | None, int]] = queue.Queue()
    gone: queue.Queue[tuple[str | None, int]] = queue.Queue()
    with Client(addresses, timeout=3.0) as app:  # runs through the whole outage
        first = app.config_listen("db.url", lambda content, rev: calls.put((content, rev)))
        assert first is not None and (first.content, first.revision) == ("jdbc:v5", 5)
        assert calls.get(timeout=10) == ("jdbc:v5", 5)
        assert app.config_get("flags.json").revision == 3  # its floor: 3
        assert app.config_listen("old.flag", lambda c, rev: gone.put((c, rev))) is None
        assert gone.get(timeout=10) == (None, 2)  # its floor: 2
        archive = tmp_path / "dr.zip"
        cli(old[0], "export", "--out", str(archive))
        for node in old:  # the disaster: every node gone, data directories lost
            node.kill()
        new = cluster(ports, tmp_path / "new")  # same addresses, empty data directories
        nodes_to_clean.extend(new)
        report = json.loads(cli(new[1], "import", str(archive), "--json"))
        assert sorted(report["created"]) == ["DEFAULT_GROUP/db.url", "DEFAULT_GROUP/flags.json"]
        assert report["failed"] == [] and report["absent"] == ["DEFAULT_GROUP/old.flag"]
        fresh = json.loads(cli(new[2], "get", "db.url", "--json"))
        assert (fresh["content"], fresh["revision"]) == ("jdbc:v5", 5)  # the source's

        def reads(data_id: str, want: tuple[str, int]) -> bool:
            try:
                got = app.config_get(data_id)
            except MeshregError:
                return False  # the client is still reconnecting (its backoff)
            return got is not None and (got.content, got.revision) == want

        # the same client, never restarted: reads the restored versions ...
        wait_until(lambda: reads("db.url", ("jdbc:v5", 5)), 30, what="db.url read after DR")
        wait_until(lambda: reads("flags.json", ('{"n": 3}', 3)), 30, what="flags read after DR")
        # ... and hears the first change made in the rebuilt cluster
        cli(new[0], "publish", "db.url", "--content", "jdbc:after-restore")
        assert calls.get(timeout=40) == ("jdbc:after-restore", 6)
        got = app.config_get("db.url")
        assert (got.content, got.revision) == ("jdbc:after-restore", 6)
        # the data id deleted at the source, created again in the rebuilt cluster: above its
        # kept tombstone (2), so the client that saw the delete hears it
        cli(new[1], "publish", "old.flag", "--content", "back")
        assert gone.get(timeout=40) == ("back", 3)
    assert report["below_archived_revision"] == []  # every revision kept


def test_a_running_client_behind_a_rebuilt_cluster_is_told_what_the_nodes_answered(
    tmp_path: Path, nodes_to_clean: list[NodeProcess]
) -> None:
    """An archive without revisions (made by hand: ``configs/`` files only) restarts the
    data id at revision 1, below a running client's floor.  Every node answers its reads
    UNAVAILABLE "this node holds revision 1 and you have seen 4" after waiting 1 s; the
    client used to give up on each just before that answer and say "no reply from meshreg
    server(s) ... is `meshreg node` running there?" (review11's DR run).  It now says
    what the nodes answered, who, and what to try."""
    ports = [free_port_pair() for _ in range(3)]
    old = cluster(ports, tmp_path / "old")
    nodes_to_clean.extend(old)
    for n in range(1, 5):
        cli(old[0], "publish", "db.url", "--content", f"jdbc:v{n}")
    with Client([n.address for n in old], timeout=5.0) as app:
        assert app.config_get("db.url").revision == 4
        for node in old:
            node.kill()
        new = cluster(ports, tmp_path / "new")
        nodes_to_clean.extend(new)
        archive = tmp_path / "by-hand.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("configs/DEFAULT_GROUP/db.url", "jdbc:v4")
        cli(new[0], "import", str(archive))
        assert json.loads(cli(new[1], "get", "db.url", "--json"))["revision"] == 1

        def refused() -> ServerError | None:
            try:
                app.config_get("db.url")
            except ServerError as exc:
                return exc
            except MeshregError:
                return None  # still reconnecting after the outage (its backoff)
            raise AssertionError("read revision 1 after having seen 4")

        error = wait_until(refused, 40, interval=0.2, what="the nodes' refusal")
        text = str(error)
        assert error.code == ErrorCode.UNAVAILABLE, text
        assert "no reply" not in text and "running there" not in text, text
        assert "holds revision 1 and you have seen 4" in text, text
        assert any(f"UNAVAILABLE from {n.address}" in text for n in new), text
        assert "new Client" in text, text
