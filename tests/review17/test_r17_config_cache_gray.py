"""review17 F1: the config disk cache keeps the version *one client* was served (its gray
version, if its labels matched) with the flag `gray_served`, and a client that starts while
no node answers serves that copy as is, whatever its own labels.

docs/CONFIG.md, "Gray release" (README: "serves the gray content to clients whose labels
include every pair of the rule ... Everyone else gets the main content") and "Disk
(cache_dir)": "A config_get no node answers returns the disk copy". The disk copy holds
the main content, the gray content and the gray rule (labels), so the client could serve
each client what the rule gives it; instead a stable (unlabelled) process is served the
canary's gray content, and a canary process the main content, depending on which of them
wrote the file last.

Real processes: one node; two clients with one cache_dir (two workers of one application
on one host, one of them labelled canary; or one process restarted without its canary
label)."""

from __future__ import annotations

import logging
from pathlib import Path

from helpers import NodeProcess

from meshreg import Client

MAIN = "main: 1\n"
GRAY = "gray: 1\n"


def _publish(node: NodeProcess) -> None:
    with Client([node.address]) as admin:
        admin.config_publish("app.yaml", MAIN, type="yaml")
        admin.config_gray("app.yaml", GRAY, labels={"env": "canary"})


def test_stable_client_started_in_outage_is_not_served_canary_gray(
    start_node, tmp_path: Path, caplog
) -> None:
    caplog.set_level(logging.ERROR)
    node = start_node()
    _publish(node)
    cache = str(tmp_path / "cache")
    # live: each is served what the rule gives it
    with Client([node.address], cache_dir=cache) as stable:
        assert stable.config_get("app.yaml").content == MAIN
    with Client([node.address], cache_dir=cache, labels={"env": "canary"}) as canary:
        info = canary.config_get("app.yaml")
        assert info.content == GRAY and info.gray_served
    node.kill()  # the whole (one-node) cluster is down

    with Client([node.address], cache_dir=cache, timeout=1.5) as stable2:
        info = stable2.config_get("app.yaml")
        assert info is not None and info.from_cache
        assert info.content == MAIN, (
            f"a client without the canary label, started while no node answers, was served "
            f"{info.content!r} (gray_served={info.gray_served}) from the disk cache: the "
            f"canary's gray version, which the rule env=canary does not give it"
        )


def test_canary_client_started_in_outage_gets_its_gray(start_node, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.ERROR)
    node = start_node()
    _publish(node)
    cache = str(tmp_path / "cache")
    with Client([node.address], cache_dir=cache, labels={"env": "canary"}) as canary:
        assert canary.config_get("app.yaml").content == GRAY
    with Client([node.address], cache_dir=cache) as stable:
        assert stable.config_get("app.yaml").content == MAIN
    node.kill()

    with Client([node.address], cache_dir=cache, labels={"env": "canary"}, timeout=1.5) as c2:
        info = c2.config_get("app.yaml")
        assert info is not None and info.from_cache
        assert info.content == GRAY, (
            f"a canary client started while no node answers was served {info.content!r} "
            f"from the disk cache, not its gray version (the file holds the gray rule and "
            f"content: {info.gray!r})"
        )
