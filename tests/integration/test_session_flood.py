"""A flood of empty ``session_open``s from one raw connection (review finding
F-sessflood): the node's session table must not be one client's to fill.

A real node with a small ``[limits] max_sessions``; a raw ZeroMQ DEALER opens more
sessions than the node holds (bounded in count and time) and keeps renewing them; a
well-behaved ``Client`` must still register, and its instance must stay healthy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helpers import NodeProcess, RawDealer, raw_request, wait_until

from meshreg import Client

MAX_SESSIONS = 320
TIMINGS = ("--check-interval", "0.1", "--unhealthy-after", "1.5", "--evict-after", "30")
CLIENT = {"beat_interval": 0.2, "timeout": 3.0, "attempt_timeout": 0.5, "sessions": True}


class Flooder(RawDealer):
    """One raw DEALER connection sending session requests and reading every reply."""

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.opened: list[str] = []  # session ids the node gave us
        self.refused: list[str] = []  # messages of the refusals

    def open_many(self, n: int) -> None:
        """``n`` session_opens (the node chooses the ids), 100 in flight at most."""
        sent = 0
        while sent < n:
            batch = min(100, n - sent)
            for _ in range(batch):
                self.send("session_open", namespace="public")
            sent += batch
            for reply in self.replies(batch):
                if reply["ok"]:
                    self.opened.append(reply["result"]["session"])
                else:
                    assert reply["error"]["name"] == "RESOURCE_EXHAUSTED", reply
                    self.refused.append(reply["error"]["message"])

    def renew_all(self) -> None:
        for sid in self.opened:
            self.send("session_renew", namespace="public", session=sid)
        self.replies(len(self.opened))


def stats(node: NodeProcess) -> dict[str, Any]:
    return raw_request(node.port, {"v": 1, "id": 1, "op": "stats"}, 2.0)["result"]


def healthy_for(c: Client, seconds: float, keep_busy: Callable[[], None]) -> None:
    """The client's instance stays listed healthy for ``seconds`` (more than twice
    ``unhealthy_after``), while ``keep_busy`` keeps the flood's sessions alive."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        keep_busy()
        listed = c.instances("orders", healthy_only=False)
        assert [(i.ip, i.healthy) for i in listed] == [("10.0.0.1", True)], listed


def node_with(tmp_path: Path, start_node: Callable[..., NodeProcess], limits: str) -> NodeProcess:
    config = tmp_path / "node.toml"
    config.write_text(f"[limits]\nmax_sessions = {MAX_SESSIONS}\n{limits}")
    return start_node(*TIMINGS, "--config", str(config))


def test_one_connection_cannot_take_the_session_table_from_the_others(
    tmp_path: Path, start_node: Callable[..., NodeProcess]
) -> None:
    node = node_with(tmp_path, start_node, "")
    flood = Flooder(node.port)
    try:
        flood.open_many(MAX_SESSIONS + 10)
        with Client([node.address], **CLIENT) as c:
            c.register("orders", "10.0.0.1", 8080)
            assert c._agent.status.session_id is not None  # in a session: the table had room
            healthy_for(c, 3.5, flood.renew_all)
        # the flood got its share of the table (max_sessions // 16 by default), no more
        assert len(flood.opened) == MAX_SESSIONS // 16, len(flood.opened)
        assert "max_sessions_per_client" in flood.refused[0], flood.refused[0]
        assert stats(node)["rejected_quota"]["max_sessions_per_client"] == len(flood.refused)
        # 310 refusals, logged once per interval (10 s): one line, with a count later
        logged = [x for x in node.log().splitlines() if "max_sessions_per_client" in x]
        assert 1 <= len(logged) <= 2, logged
    finally:
        flood.close()


def test_a_full_table_leaves_the_client_on_per_instance_beats(
    tmp_path: Path, start_node: Callable[..., NodeProcess]
) -> None:
    """Even when the table is full (a share as large as the table), registration works:
    the client keeps its instance alive with per-instance beats."""
    node = node_with(tmp_path, start_node, f"max_sessions_per_client = {MAX_SESSIONS}\n")
    flood = Flooder(node.port)
    try:
        flood.open_many(MAX_SESSIONS + 10)
        assert len(flood.opened) == MAX_SESSIONS and len(flood.refused) == 10
        with Client([node.address], **CLIENT) as c:
            c.register("orders", "10.0.0.1", 8080)
            assert c._agent.status.session_id is None  # fell back on per-instance beats
            healthy_for(c, 3.5, flood.renew_all)
            assert stats(node)["requests"].get("beat", 0) > 0  # kept alive by beats
    finally:
        flood.close()


def test_empty_sessions_expire_fast(tmp_path: Path, start_node: Callable[..., NodeProcess]) -> None:
    """A flood that opens and walks away holds the table for ``empty_session_after``,
    not ``evict_after`` (30 s here)."""
    config = tmp_path / "node.toml"
    config.write_text(
        f"[limits]\nmax_sessions = {MAX_SESSIONS}\nmax_sessions_per_client = {MAX_SESSIONS}\n"
        "[health]\nempty_session_after = 1.0\n"
    )
    node = start_node(*TIMINGS, "--config", str(config))
    flood = Flooder(node.port)
    try:
        flood.open_many(MAX_SESSIONS)
        assert stats(node)["sessions"]["count"] == MAX_SESSIONS
    finally:
        flood.close()
    wait_until(lambda: stats(node)["sessions"]["count"] == 0, 10.0, 0.1, "empty sessions gone")
