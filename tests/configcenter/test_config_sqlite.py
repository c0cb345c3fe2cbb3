"""Persistence of the config store (meshreg/configcenter/sqlite_store.py): round trips, the
committed flag, pruning, the schema version, and a real process SIGKILLed right after it
reported a write as acknowledged."""

from __future__ import annotations

import os
import select
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from meshreg.configcenter.core import ConfigStore
from meshreg.configcenter.model import ConfigEntry, ConfigKey, ConfigLimits, content_md5
from meshreg.configcenter.sqlite_store import SqliteConfigStore, database_path, mark_store_fresh
from meshreg.errors import ConfigError

K = ConfigKey("public", "DEFAULT_GROUP", "app.yaml")


def reopen(path: Path) -> ConfigStore:
    core = ConfigStore("n1")
    with SqliteConfigStore(path) as db:
        db.load_into(core)
    return core


def test_round_trip_keeps_every_field_and_the_history(tmp_path: Path) -> None:
    path = database_path(tmp_path / "data")
    core = ConfigStore("n1")
    with SqliteConfigStore(path) as db:
        written = [
            core.publish(K, "a: 1", "yaml", now=1.0, by="ops", description="d",
                         tags={"team": "x"}),
            core.publish(K, "a: 2 é", "yaml", now=2.0),
            core.publish_gray(K, "a: 3", labels={"env": "canary"}, clients=["10.0.0.1"],
                              now=3.0),
            core.delete(K, now=4.0),
        ]  # fmt: skip
        for entry in written:
            db.save([entry])
        assert db.count() == 4
    again = reopen(path)
    assert again.entries(K) == written
    assert again.current(K) == written[-1]
    assert again.get(K, revision=3).gray == written[2].gray


def test_committed_flag_is_upgraded_not_duplicated(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    core = ConfigStore("n1")
    entry = core.publish(K, "x", now=1.0)
    with SqliteConfigStore(path) as db:
        db.save([entry])
        marked = core.commit(K, 1, "n1", entry.md5)
        assert marked is not None
        db.save([marked])
        db.save([entry])  # a late uncommitted copy does not lower the flag
        assert db.count() == 1
    assert reopen(path).current(K) == marked


def test_one_write_of_many_versions_saves_and_removes_in_order(tmp_path: Path) -> None:
    """``write`` (the node's group commit): more versions than one INSERT statement holds,
    a version saved twice in it (uncommitted, then committed, then uncommitted again),
    and a removal after the saves, in one transaction; a single save goes alone."""
    from meshreg.configcenter import sqlite_store

    path = tmp_path / "w.db"
    core = ConfigStore("n1")
    keys = [ConfigKey("public", "DEFAULT_GROUP", f"d{i}") for i in range(300)]
    entries = [core.publish(k, f"v{i}", now=1.0 + i) for i, k in enumerate(keys)]
    assert len(entries) > sqlite_store.ROWS_PER_INSERT
    first = entries[0]
    marked = core.commit(first.key, 1, "n1", first.md5)
    assert marked is not None
    gone = entries[5]
    with SqliteConfigStore(path) as db:
        db.write([(True, [*entries, marked, first], ()), (False, [gone], ())])
        assert db.count() == 299
        late = core.publish(keys[1], "late", now=999.0)
        db.write([(True, [late], ())])
    again = reopen(path)
    assert again.current(first.key) == marked  # the flag raised, never lowered
    assert again.current(gone.key) is None
    assert again.current(keys[1]) == late
    assert [again.current(k) for k in keys[6:]] == entries[6:]


def test_consecutive_save_ops_share_one_insert_in_their_order(tmp_path: Path) -> None:
    """A loop turn queues one save op per version (``Persist`` of one entry): ``write``
    puts consecutive saves in one INSERT (a statement per version cost a sqlite3 step,
    and a GIL handoff, each), a removal between them splits them, and the rows keep
    their order: a version saved, then marked committed in a later op, is committed."""
    path = tmp_path / "s.db"
    core = ConfigStore("n1")
    keys = [ConfigKey("public", "DEFAULT_GROUP", f"d{i}") for i in range(4)]
    entries = [core.publish(k, f"v{i}", now=1.0 + i) for i, k in enumerate(keys)]
    marked = core.commit(keys[0], 1, "n1", entries[0].md5)
    assert marked is not None
    with SqliteConfigStore(path) as db:
        statements: list[str] = []
        db._conn.set_trace_callback(statements.append)
        db.write([(True, [e], ()) for e in entries] + [(True, [marked], ())])
        inserts = [s for s in statements if s.startswith("INSERT")]
        assert len(inserts) == 1 and not any(s.startswith("BEGIN") for s in statements)
        statements.clear()
        later = core.publish(keys[1], "w", now=9.0)
        db.write([(True, [later], ()), (False, [entries[3]], ()), (True, [entries[3]], ())])
        assert [s.split()[0] for s in statements if s.split()[0] in ("INSERT", "DELETE")] == [
            "INSERT", "DELETE", "INSERT"]  # fmt: skip
        db._conn.set_trace_callback(None)
    again = reopen(path)
    assert again.current(keys[0]) == marked
    assert again.current(keys[1]) == later
    assert again.current(keys[3]) == entries[3]  # removed, then saved again: there


def test_arrival_order_decides_the_acked_version_after_restart(tmp_path: Path) -> None:
    from test_config_core import version

    path = tmp_path / "o.db"
    core = ConfigStore("x")
    with SqliteConfigStore(path) as db:
        for v in (version(3, "node-b", "b"), version(3, "node-a", "a")):
            db.save([core.apply(v).stored])  # type: ignore[list-item]
    again = reopen(path)
    assert again.apply(version(3, "node-b", "b")).ack  # b came first
    assert not again.apply(version(3, "node-a", "a")).ack


def test_pruned_versions_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    core = ConfigStore("n1", ConfigLimits(keep_revisions=2, keep_seconds=None))
    with SqliteConfigStore(path) as db:
        for i in range(5):
            db.save([core.publish(K, f"v{i}", now=float(i))])
        db.remove(core.prune(10.0))
        assert db.count() == 2
    assert [e.revision for e in reopen(path).history(K).items] == [5, 4]


def test_wal_full_sync_and_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SqliteConfigStore(path) as db:
        assert db._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    conn = sqlite3.connect(path)
    conn.execute("UPDATE schema_version SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(ConfigError, match="schema version 99"):
        SqliteConfigStore(path)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ConfigError, match="not a usable config database"):
        SqliteConfigStore(junk)


CHILD = textwrap.dedent(
    """
    import sys
    from meshreg.configcenter.core import ConfigStore
    from meshreg.configcenter.model import ConfigKey
    from meshreg.configcenter.sqlite_store import SqliteConfigStore

    db = SqliteConfigStore(sys.argv[1])
    core = ConfigStore("child")
    db.load_into(core)
    key = ConfigKey("public", "DEFAULT_GROUP", "app.yaml")
    for i in range(int(sys.argv[2])):
        entry = core.publish(key, "value %d " % i + "x" * 4000, now=float(i))
        db.save([entry])  # returns after COMMIT (WAL fsynced): only then acknowledge
        print("acked", entry.revision, flush=True)
    sys.stdin.read()  # wait to be killed
    """
)


def _read_line(proc: subprocess.Popen[str], deadline: float) -> str:
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if ready:
            return proc.stdout.readline()
    raise AssertionError("the child printed nothing before the deadline")


@pytest.mark.parametrize("writes", [1, 30])
def test_acknowledged_write_survives_sigkill_right_after(tmp_path: Path, writes: int) -> None:
    path = tmp_path / "kill.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(writes)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    try:
        deadline = time.monotonic() + 60
        last = ""
        for _ in range(writes):
            last = _read_line(proc, deadline)
            if writes > 1 and last.startswith("acked 15"):
                os.kill(proc.pid, signal.SIGKILL)  # mid-stream: right after an ack
                break
        else:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    acked = int(last.split()[1])
    core = reopen(path)
    current = core.get(K)
    assert current.revision >= acked  # everything acknowledged is there (maybe one more)
    revisions = [e.revision for e in core.entries(K)]
    assert revisions == list(range(1, current.revision + 1))  # history intact
    assert core.get(K, revision=acked).content.startswith(f"value {acked - 1} ")


V1_SCHEMA = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (1);
CREATE TABLE config_versions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, namespace TEXT NOT NULL, grp TEXT NOT NULL,
    data_id TEXT NOT NULL, revision INTEGER NOT NULL, origin TEXT NOT NULL, md5 TEXT NOT NULL,
    gray_md5 TEXT NOT NULL, deleted INTEGER NOT NULL, content TEXT NOT NULL, type TEXT NOT NULL,
    modified REAL NOT NULL, modified_by TEXT NOT NULL, description TEXT NOT NULL,
    tags TEXT NOT NULL, change TEXT NOT NULL, gray TEXT, committed INTEGER NOT NULL,
    UNIQUE (namespace, grp, data_id, revision, origin, md5, gray_md5, deleted)
);
INSERT INTO config_versions (namespace, grp, data_id, revision, origin, md5, gray_md5,
    deleted, content, type, modified, modified_by, description, tags, change, gray, committed)
VALUES ('public', 'DEFAULT_GROUP', 'app.yaml', 1, 'n1', '0cc175b9c0f1b6a831c399e269772661',
    '', 0, 'a', 'text', 1.0, 'ops', '', '[]', 'publish', NULL, 1);
"""


def test_a_version_1_database_is_migrated_and_request_ids_are_kept(tmp_path: Path) -> None:
    """A data dir of the previous release (schema 1, no request ids) opens: its versions
    load (without an id), the schema is 2, and new versions keep their request id."""
    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA)
    conn.close()
    with SqliteConfigStore(path) as db:
        core = ConfigStore("n1")
        assert db.load_into(core) == 1
        old = core.get(K)
        assert (old.revision, old.content, old.committed, old.request_id) == (1, "a", True, "")
        new = core.publish(K, "b", now=2.0, request_id="0123456789abcdef")
        db.save([new])
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [(2,)]
    conn.close()
    again = reopen(path)
    assert again.find_request(K, "0123456789abcdef") == new
    assert [e.request_id for e in again.entries(K)] == ["", "0123456789abcdef"]
    with SqliteConfigStore(path) as db:  # opened again: nothing to migrate
        assert db.count() == 2


def test_the_purged_tombstone_floors_survive_a_restart(tmp_path: Path) -> None:
    """Written beside the database (``save_floors``) before the tombstones go, read back
    at the next open: a data id created again after a restart still goes on above its
    purged tombstone.  An unreadable file stops the start with a clear error."""
    path = database_path(str(tmp_path))
    db = SqliteConfigStore(path)
    store = ConfigStore("n1", ConfigLimits(keep_seconds=10.0))
    key = ConfigKey("public", "g", "flags")
    saved = [store.publish(key, f"v{n}", now=float(n)) for n in range(2)]
    saved.append(store.delete(key, now=2.0))
    db.save(saved)
    removed = store.prune(100.0)
    assert store.floors_changed and len(removed) == 3
    db.save_floors(store.purged_floors)
    db.remove(removed)
    db.close()
    db = SqliteConfigStore(path)
    fresh = ConfigStore("n1")
    assert db.load_into(fresh) == 0
    db.load_floors(fresh)
    assert fresh.publish(key, "again", now=200.0).revision == 4
    db.close()
    db.floors_path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="revision floor file"):
        SqliteConfigStore(path).load_floors(ConfigStore("n1"))


def test_the_store_state_says_whole_or_started_empty_across_restarts(tmp_path: Path) -> None:
    """review42 F1: a store that started empty stays "fresh" until the node caught up,
    a restart in between included (it may hold some versions by then); a data dir of an
    older version (no state file) with versions is whole; the peers seen whole are kept;
    an unreadable file stops the start with what to do."""
    path = database_path(tmp_path / "a")
    with SqliteConfigStore(path) as db:
        assert db.load_state(empty=True) == (False, set(), False)  # written at once
        assert db.load_state(empty=False) == (False, set(), False)  # killed before it caught up
        db.save_state(True, {"10.0.0.2:7800"})
        assert db.load_state(empty=True) == (True, {"10.0.0.2:7800"}, False)
        assert db.state_path.stat().st_mode & 0o077 == 0  # private, as the databases
    old = database_path(tmp_path / "b")
    with SqliteConfigStore(old) as db:  # an older version's data dir: no file
        assert db.load_state(empty=False) == (True, set(), False)
        assert db.state_path.exists()
    for body in ("{", '{"store": "maybe"}', '{"store": "intact", "seen": [1]}',
                 '{"store": "fresh", "joining": 1}'):  # fmt: skip
        db.state_path.write_text(body)
        with SqliteConfigStore(old) as again, pytest.raises(ConfigError) as info:
            again.load_state(empty=False)
        assert "not a readable store state file" in str(info.value)
        assert "empty the data directory" in str(info.value)
    mark_store_fresh(tmp_path / "b")
    with SqliteConfigStore(old) as db:
        assert db.load_state(empty=False) == (False, set(), False)


def test_a_store_joining_an_existing_cluster_stays_so_until_whole(tmp_path: Path) -> None:
    """review43 F1: ``--config-join-existing`` on a store that started empty is kept in the
    state file, so a restart before it caught up, without the flag, is still joining
    (never a new member); a whole store ignores the flag, and whole again drops it."""
    path = database_path(tmp_path / "a")
    with SqliteConfigStore(path) as db:
        assert db.load_state(empty=True, join_existing=True) == (False, set(), True)
        assert db.load_state(empty=False) == (False, set(), True)  # restarted without it
        db.save_state(True, {"10.0.0.2:7800"}, True)  # caught up
        assert db.load_state(empty=False, join_existing=True) == (True, {"10.0.0.2:7800"}, False)
    fresh = database_path(tmp_path / "b")
    with SqliteConfigStore(fresh) as db:
        assert db.load_state(empty=True) == (False, set(), False)  # a new cluster's member
        assert db.load_state(empty=False, join_existing=True) == (False, set(), True)
        assert db.load_state(empty=False) == (False, set(), True)


def test_a_database_deleted_alone_is_a_store_that_started_empty(tmp_path: Path) -> None:
    """The state file says whole, but the database beside it was deleted (to "reset" the
    node's configs) and is created anew: the store is empty, so it is not whole (else the
    node would count its empty store among a majority: review42 F1 by another road)."""
    path = database_path(tmp_path / "a")
    with SqliteConfigStore(path) as db:
        assert db.load_state(empty=True) == (False, set(), False)
        db.save_state(True, {"10.0.0.2:7800"})
    for name in os.listdir(path.parent):
        if name.startswith(path.name):
            os.remove(path.parent / name)
    with SqliteConfigStore(path) as db:
        assert db.created
        assert db.load_state(empty=True, join_existing=True) == (False, {"10.0.0.2:7800"}, True)
    with SqliteConfigStore(path) as db:  # on disk: a restart before it caught up too
        assert not db.created and db.load_state(empty=True) == (False, {"10.0.0.2:7800"}, True)
    # review46 F2: a purged floors file left beside it made the store look not empty
    floors = database_path(tmp_path / "b")
    with SqliteConfigStore(floors) as db:
        db.load_state(empty=True)
        db.save_state(True, set())
        db.save_floors({7: 5})
    for name in os.listdir(floors.parent):
        if name.startswith(floors.name):
            os.remove(floors.parent / name)
    with SqliteConfigStore(floors) as db:
        assert db.created and db.load_state(empty=False) == (False, set(), False)


def _versions_arrived_at(arrived: float) -> tuple[ConfigStore, ConfigEntry, ConfigEntry]:
    """r1 acknowledged, r2 not (its commit messages lost), both reached this node at
    ``arrived`` (written by the owner just before)."""
    store = ConfigStore("n1")
    store.now = arrived
    v1 = ConfigEntry(K, 1, "n9", "v1", "text", content_md5("v1"), arrived - 1.0, committed=True)
    v2 = ConfigEntry(K, 2, "n9", "v2", "text", content_md5("v2"), arrived)
    store.apply(v1)
    store.apply(v2)
    return store, v1, v2


def _restart(path: Path, start: float) -> ConfigStore:
    """What a node's start does (runtime/config_plane): load with ``now`` = the start."""
    store = ConfigStore("n1")
    store.now = start
    with SqliteConfigStore(path) as db:
        db.load_into(store)
    store.settle_loaded(start)
    return store


def test_a_version_shown_unacknowledged_before_a_restart_is_shown_at_once_after_it(
    tmp_path: Path,
) -> None:
    """The learner simulation's seed 42: a node showed r21 by the settle rule (its commit
    messages lost), crashed and restarted 1 s later; loaded unacknowledged, r21 settled
    only 2.5 s after the start, so a reader of that node stepped back to r20.  Each
    version keeps when it settles here (``settles_at``, this node's clock)."""
    path = database_path(tmp_path / "data")
    before, v1, v2 = _versions_arrived_at(1000.0)
    assert before.shown(K, 1002.4) is v1 and before.shown(K, 1002.5) is v2
    assert (before.arrival_settle(v1), before.arrival_settle(v2)) == (0.0, 1002.5)
    with SqliteConfigStore(path) as db:
        db.write([(True, (v1, v2), (before.arrival_settle(v1), before.arrival_settle(v2)))])
    shown_before = _restart(path, 1003.0)  # restarted after it showed r2: r2 at once
    assert shown_before.current(K) == v2 and shown_before.shown(K, 1003.0) == v2
    early = _restart(path, 1001.0)  # restarted before it showed r2: from 1002.5 as before
    assert early.shown(K, 1002.4) == v1 and early.shown(K, 1002.5) == v2
    set_back = _restart(path, 900.0)  # a clock set back since: never later than the start's rule
    assert set_back.shown(K, 902.4) == v1 and set_back.shown(K, 902.5) == v2


def test_a_version_saved_without_its_settle_time_settles_after_the_start(tmp_path: Path) -> None:
    """A row without the time (``db.save``, a previous release's rows): 2.5 s after the
    start, as before (review46 F4), not at once."""
    path = database_path(tmp_path / "data")
    _, v1, v2 = _versions_arrived_at(1000.0)
    with SqliteConfigStore(path) as db:
        db.save([v1, v2])
    store = _restart(path, 1003.0)
    assert store.shown(K, 1005.4) == v1 and store.shown(K, 1005.5) == v2


def test_a_previous_releases_database_gains_the_column_and_stays_readable_by_it(
    tmp_path: Path,
) -> None:
    """``settles_at`` is added in place, without a new schema version: the previous
    release (which selects and inserts its own columns) still opens the database after
    this one did (a downgrade)."""
    path = tmp_path / "v2.db"
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA)
    conn.execute("ALTER TABLE config_versions ADD COLUMN request_id TEXT NOT NULL DEFAULT ''")
    conn.execute("UPDATE schema_version SET version = 2")
    conn.commit()
    conn.close()
    _, _, v2 = _versions_arrived_at(1000.0)
    with SqliteConfigStore(path) as db:
        db.write([(True, (v2,), (1002.5,))])
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [(2,)]
    rows = conn.execute("SELECT revision, settles_at FROM config_versions ORDER BY seq")
    assert rows.fetchall() == [(1, 0.0), (2, 1002.5)]
    old_columns = (
        "namespace, grp, data_id, revision, origin, md5, gray_md5, deleted, content, type, "
        "modified, modified_by, description, tags, change, gray, committed, request_id"
    )
    conn.execute(
        f"INSERT INTO config_versions ({old_columns}) SELECT namespace, grp, data_id, 3, "
        "origin, md5, gray_md5, deleted, content, type, modified, modified_by, description, "
        "tags, change, gray, committed, request_id FROM config_versions WHERE revision = 2"
    )  # what the previous release's insert is: its own columns
    conn.commit()
    assert len(conn.execute(f"SELECT {old_columns} FROM config_versions").fetchall()) == 3
    conn.close()
    with SqliteConfigStore(path) as db:  # and this release again
        assert db.count() == 3
