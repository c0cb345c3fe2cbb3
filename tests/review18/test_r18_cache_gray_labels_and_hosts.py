"""review18 F4: a gray rule with labels *and* hosts.  A disk copy written by a client the
rule's labels selected told nothing about whether this host is listed, so a stable worker
on a listed host, reading the shared copy while no node answers, got the main version
where the node serves it the gray one.  The node now says whether the reader's address is
listed (``gray_host``), and the copy is served by it.

Real processes: one node; clients sharing one cache_dir on this host (127.0.0.1)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from helpers import NodeProcess

from meshreg import Client

MAIN = "main: 1\n"
GRAY = "gray: 1\n"


def _publish(node: NodeProcess, clients: list[str]) -> None:
    with Client([node.address]) as admin:
        admin.config_publish("app.yaml", MAIN, type="yaml")
        admin.config_gray("app.yaml", GRAY, labels={"env": "canary"}, clients=clients)


@pytest.mark.parametrize(
    ("clients", "expected"),
    [(["127.0.0.1"], GRAY), (["10.9.9.9"], MAIN)],
    ids=["this-host-listed", "other-host-listed"],
)
def test_copy_written_by_label_selected_client_serves_host_as_node_does(
    start_node, tmp_path: Path, caplog, clients: list[str], expected: str
) -> None:
    caplog.set_level(logging.ERROR)
    node = start_node()
    _publish(node, clients)
    cache = str(tmp_path / "cache")
    with Client([node.address]) as stable:  # live, no cache: what the node serves it
        live = stable.config_get("app.yaml")
        assert live.content == expected
        assert live.gray_host is (expected == GRAY)
    with Client([node.address], cache_dir=cache, labels={"env": "canary"}) as canary:
        info = canary.config_get("app.yaml")  # the last copy written: by a labelled reader
        assert info.content == GRAY and info.gray_served
    node.kill()

    with Client([node.address], cache_dir=cache, timeout=1.5) as stable2:
        info = stable2.config_get("app.yaml")
        assert info is not None and info.from_cache
        assert info.content == expected, (
            f"a client without the canary label on a host the rule lists as {clients}, "
            f"started while no node answers, was served {info.content!r} from the copy a "
            f"canary wrote; the node serves it {expected!r}"
        )
