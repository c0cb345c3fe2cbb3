"""review18: with `cache_dir`, a client that published a data id reads, while its only
node stalls for a moment (SIGSTOP here: a GC pause, a frozen VM, a loaded node answering
after `attempt_timeout`), the disk copy of the revision *before* its own write: the
content it replaced, older than what it knows. A publish does not update the disk copy
(only reads and pushes do), and the failover to the copy (faster since review17 F2: one
`attempt_timeout`, 1.5 s here) ignores the revision the client has seen.

`Client.config_get` docstring: "Never older than what this client has seen of it (its own
writes included)"; README "Outage": a read "it holds in memory or on disk is answered
from it". The client holds revision 2 (it wrote it); it serves revision 1.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path

from helpers import wait_until

from meshreg import Client


def test_stalled_node_read_not_older_than_own_write(start_node, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.ERROR)
    node = start_node()
    cache = tmp_path / "cache"
    with Client([node.address], cache_dir=str(cache), timeout=5) as c:
        c.config_publish("app.yaml", "v1")
        assert c.config_get("app.yaml").revision == 1  # copy on disk: revision 1
        copy = cache / "+configs" / "public" / "DEFAULT_GROUP" / "app.yaml.json"
        wait_until(copy.is_file, 5.0, what="the disk copy")
        written = c.config_publish("app.yaml", "v2")
        assert written.revision == 2
        node.signal(signal.SIGSTOP)
        try:
            read = c.config_get("app.yaml")
        finally:
            node.signal(signal.SIGCONT)
    assert read is not None
    assert read.revision >= written.revision, (
        f"the client published revision {written.revision} ('v2'); while its node stalled, "
        f"config_get served revision {read.revision} ({read.content!r}, from_cache="
        f"{read.from_cache}) from the disk copy: older than its own write"
    )
