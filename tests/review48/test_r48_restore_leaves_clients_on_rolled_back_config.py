"""review48 F1: after the documented whole-cluster restore from a snapshot (OPERATIONS.md
"Restoring a lost cluster"), a client that ran through the outage and had seen a revision
newer than the snapshot keeps its revision floor: its config listener is never called for
the restored content nor for new writes (revisions 3, 4 < the floor 5), and config_get
refuses ("this node holds revision 4 and you have seen 5") or serves the rolled-back
content from disk. OPERATIONS.md: "Providers and consumers that ran through the outage
carry on by themselves (their disk caches and revision floors)"."""

from __future__ import annotations

import os
import tempfile

import pytest
from helpers import run_cli, serves_config_revision
from r48lib import (
    ConfigRecorder,
    client,
    new_nodes,
    restore_lost_cluster,
    running,
    wait_ready,
    wait_until,
)

BUMP = 1_000_000  # OPERATIONS.md "Restoring a lost cluster": --bump-revision


@pytest.mark.timeout(150)
@pytest.mark.parametrize("cache", [False, True], ids=["no-cache", "cache_dir"])
def test_listener_and_reads_follow_the_restored_cluster(cache: bool) -> None:
    tmp = tempfile.mkdtemp(prefix="r48-f1-")
    snap = os.path.join(tmp, "before.snap")
    nodes = new_nodes(3, tmp)
    clients = []
    try:
        with running(nodes):
            addrs = [n.address for n in nodes]
            for n in nodes:
                wait_ready(n)
            w = client(addrs)
            clients.append(w)
            w.config_publish("app", "a1")
            w.config_publish("app", "a2")
            # the snapshot is n1's store: acknowledged by a majority, a2 may not be there yet
            n1 = nodes[0].address
            wait_until(lambda: serves_config_revision(n1, "app", 2), 10, what="n1 holds revision 2")
            r = run_cli("snapshot", "save", "--data-dir", nodes[0].data_dir, "--out", snap)
            assert r.returncode == 0, r.stderr
            for c in ("a3", "a4", "a5"):
                w.config_publish("app", c)
            kw = {"cache_dir": os.path.join(tmp, "cache")} if cache else {}
            app = client(addrs, **kw)  # a long-running application process
            clients.append(app)
            seen = ConfigRecorder()
            app.config_listen("app", seen)
            wait_until(lambda: seen.last() == ("a5", 5), 10, what="listener at a5")

            restore_lost_cluster(nodes, snap, BUMP)  # as OPERATIONS.md says
            w2 = client(addrs)
            clients.append(w2)
            restored = w2.config_get("app")
            assert (restored.content, restored.revision) == ("a2", 2 + BUMP)  # the snapshot's
            # the application that saw a5 at revision 5 is given the restored state
            wait_until(lambda: seen.last() == ("a2", 2 + BUMP), 20, 0.1, "listener at a2")
            info = w2.config_publish("app", "after-restore")
            assert info.revision == 3 + BUMP

            def listener_follows() -> bool:
                last = seen.last()
                return last is not None and last[0] == "after-restore"

            try:
                wait_until(listener_follows, 20, 0.1, "listener called with the post-restore write")
            except AssertionError:
                pytest.fail(
                    f"20 s after the restore and a new write (revision 3), the application's "
                    f"listener was last called with {seen.last()} (rolled back by the restore); "
                    f"every callback: {[(c, r) for _, c, r in seen.events]}"
                )
            got = app.config_get("app")
            assert got.content == "after-restore", (got.content, got.revision)
    finally:
        for c in clients:
            try:
                c.close(1)
            except Exception:  # noqa: BLE001
                pass
