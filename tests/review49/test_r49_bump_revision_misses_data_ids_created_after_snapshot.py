"""review49 F1: `meshreg snapshot restore --bump-revision N` raises the revisions of the
data ids the snapshot holds (and the purged floors it holds), but a data id created
after the snapshot - so absent from it - starts again at revision 1 on the restored
cluster.  A client that ran through the outage and had seen that data id at revision k
keeps its floor k: when the data id is published again after the restore, its listener
is not called and its config_get is refused or served stale, until the data id's
revision passes k - exactly review48 F1, which the flag was made for.
OPERATIONS.md: "With it, the restored versions and every write after them are newer
than anything a client saw: listeners get the restored content, then each write."
(etcd's --bump-revision raises the store's single revision counter, so every key's
next write is above N.)"""

from __future__ import annotations

import os
import tempfile

import pytest
from helpers import run_cli, serves_config_revision
from r49lib import (
    ConfigRecorder,
    client,
    new_nodes,
    restore_lost_cluster,
    running,
    wait_ready,
    wait_until,
)

BUMP = 1_000_000  # OPERATIONS.md "Restoring a lost cluster"


@pytest.mark.timeout(150)
def test_data_id_created_after_the_snapshot_follows_the_restore() -> None:
    tmp = tempfile.mkdtemp(prefix="r49-f1-")
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
            w.config_publish("old-id", "o1")  # the snapshot holds configs
            # (the snapshot is n1's store: acknowledged by a majority, o1 may not be there yet)
            n1 = nodes[0].address
            wait_until(lambda: serves_config_revision(n1, "old-id", 1), 10, what="n1 holds old-id")
            r = run_cli("snapshot", "save", "--data-dir", nodes[0].data_dir, "--out", snap)
            assert r.returncode == 0, r.stderr
            for c in ("n1", "n2", "n3"):  # created after the snapshot
                w.config_publish("new-id", c)
            app = client(addrs)  # a long-running application process
            clients.append(app)
            seen = ConfigRecorder()
            app.config_listen("new-id", seen)
            wait_until(lambda: seen.last() == ("n3", 3), 10, what="listener at n3")

            restore_lost_cluster(nodes, snap, BUMP)  # as OPERATIONS.md says
            w2 = client(addrs)
            clients.append(w2)
            assert w2.config_get("old-id").revision == 1 + BUMP  # the bump applied
            info = w2.config_publish("new-id", "after-restore")  # re-created by the operator

            def listener_follows() -> bool:
                last = seen.last()
                return last is not None and last[0] == "after-restore"

            try:
                wait_until(listener_follows, 20, 0.1, "listener called with the post-restore write")
            except AssertionError:
                try:
                    got = app.config_get("new-id")
                    read = f"{got.content!r} at revision {got.revision}"
                except Exception as exc:  # noqa: BLE001
                    read = f"refused: {exc}"
                pytest.fail(
                    f"restored with --bump-revision {BUMP}: 'new-id' (created after the "
                    f"snapshot, seen by the application at revision 3) was published again at "
                    f"revision {info.revision}; 20 s later the application's listener was last "
                    f"called with {seen.last()}; its config_get: {read}"
                )
    finally:
        for c in clients:
            try:
                c.close(1)
            except Exception:  # noqa: BLE001
                pass
