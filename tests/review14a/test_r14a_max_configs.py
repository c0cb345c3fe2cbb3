"""review14a F3: one client fills the node-wide data id limit in seconds, and deleting what
it made gives no room back for 30 days.

`max_configs` (100,000 data ids per node, docs/CONFIG.md "Limits") is node-wide, counts
tombstones, and has no per-client share (unlike instances and sessions, docs/SECURITY.md
"Limits per client").  On main, one connection pipelining tiny publishes into a group of its
own fills it in ~8 s; every create in every namespace and group, by every client, is then
refused (RESOURCE_EXHAUSTED), on every node (each stores every config).  The refusal says
"its limit (config_max_configs 100000); delete some first", but `config_max_configs` is not
a node setting (not in `meshreg node --help`, README or docs/CONFIG.md's [config] keys),
and deleting every one of the 100,000 data ids leaves 100,000 tombstones that still count
until `keep_days` (30) purges them: measured, the create is still refused.

Fixed (quota15): `max_configs` counts live data ids only (a delete gives its room back at
once) and a namespace has its own share, `max_configs_per_namespace` (10,000 by default).
This test's flood is the reviewer's: 100,000 data ids in one namespace, so its node runs
with `max_configs_per_namespace = 0` (the node-wide limit alone, as on main); the
per-namespace share has its own tests (review14b's, test_quota_cluster.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import NodeProcess, raw_request
from util14a import config_stats, dealer, recv, req, send

LIMIT = 100_000  # DEFAULT_MAX_CONFIGS (docs/CONFIG.md)
ROOT = Path(__file__).resolve().parents[2]


def _pipeline(node: NodeProcess, op: str, n: int, **fields: object) -> dict[str, int]:
    sock = dealer(node.port)
    sent = got = 0
    errors: dict[str, int] = {}
    deadline = time.monotonic() + 120
    try:
        while got < n and time.monotonic() < deadline:
            while sent < n and sent - got < 400:
                body = {**req(op, group="sandbox", data_id=f"s{sent}", **fields), "id": sent + 1}
                send(sock, body)
                sent += 1
            reply = recv(sock, 10.0)
            if reply is None:
                break
            got += 1
            if not reply["ok"]:
                errors[reply["error"]["name"]] = errors.get(reply["error"]["name"], 0) + 1
    finally:
        sock.close()
    assert got == n, f"{op}: {got} of {n} answered"
    return errors


@pytest.fixture
def node(start_node: Callable[..., NodeProcess], tmp_path: Path) -> NodeProcess:
    """One node with the node-wide limit alone (no per-namespace share: see above)."""
    # (and no per-namespace byte share: 100,000 versions count 1 KiB each, past its 64 MiB)
    (tmp_path / "node.toml").write_text(
        "[config]\nmax_configs_per_namespace = 0\nmax_bytes_per_namespace = 0\n"
    )
    return start_node("--config", str(tmp_path / "node.toml"))


def test_deleting_a_flood_of_data_ids_gives_their_room_back(node: NodeProcess) -> None:
    assert _pipeline(node, "config_publish", LIMIT, content="x") == {}
    assert _pipeline(node, "config_delete", LIMIT) == {}
    stats = config_stats(node.port)
    reply = raw_request(node.port, req("config_publish", group="prod", data_id="app", content="y"))
    if reply["ok"]:
        return
    message = reply["error"]["message"]
    documented = (
        "config_max_configs" in (ROOT / "README.md").read_text()
        or "max_configs =" in (ROOT / "docs" / "CONFIG.md").read_text()
    )
    raise AssertionError(
        f"one client made {LIMIT} data ids in group 'sandbox' and deleted every one "
        f"(stats: {stats['configs']} live, {stats['tombstones']} tombstones); a create in "
        f"group 'prod' is still refused: {reply['error']['name']}: {message!r} (the setting "
        f"it names is {'documented' if documented else 'not a documented node setting'}; "
        "the tombstones count until keep_days purges them)"
    )
