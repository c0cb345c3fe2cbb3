"""Snapshots of a data dir (runtime/snapshot): consistent while the node writes, checked
whole before a restore touches anything, never a path taken from the archive."""

from __future__ import annotations

import io
import json
import sqlite3
import tarfile
import threading
from pathlib import Path

import pytest

from meshreg.configcenter.core import FLOOR_BUCKETS
from meshreg.configcenter.sqlite_store import DB_FILE_NAME, FLOORS_FILE_NAME, SqliteConfigStore
from meshreg.core.store import RegistryStore
from meshreg.errors import ConfigError
from meshreg.model import InstanceId, ServiceKey
from meshreg.runtime.data_dir import DataDirLock
from meshreg.runtime.registry_state import STATE_FILE_NAME, RegistryStateFile
from meshreg.runtime.snapshot import read_manifest, restore_snapshot, save_snapshot

KEY = ServiceKey("public", "DEFAULT_GROUP", "orders")
IID = InstanceId("10.0.0.2", 80, "DEFAULT")
_ROW = (
    "INSERT INTO config_versions (namespace, grp, data_id, revision, origin, md5, gray_md5, "
    "deleted, content, type, modified, modified_by, description, tags, change, gray, "
    "committed) VALUES (?, 'DEFAULT_GROUP', ?, ?, 'n1', 'm', '', 0, 'c', 'text', 1.0, '', '', "
    "'[]', 'publish', NULL, 1)"
)


def data_dir(root: Path) -> Path:
    """A node's data dir: configs (WAL, as the node keeps it) and registry settings."""
    d = root / "data"
    d.mkdir()
    SqliteConfigStore(d / DB_FILE_NAME)  # the schema, as a node creates it
    store = RegistryStore()
    store.register(KEY, IID, 1.0, True, {}, 1.0, 10)
    store.set_service(KEY, 0.5, {"owner": "team-a"}, 12)
    store.update(KEY, IID, None, False, 20, 2.0)  # a drain
    state = RegistryStateFile(str(d))
    state.save_changed(store)
    state.close()
    return d


def config_rows(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM config_versions").fetchone()[0])
    finally:
        conn.close()


def test_a_snapshot_taken_during_writes_holds_one_committed_state(tmp_path: Path) -> None:
    d = data_dir(tmp_path)
    writer = sqlite3.connect(d / DB_FILE_NAME, check_same_thread=False, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    started, done = threading.Event(), threading.Event()

    def write() -> None:  # one transaction per two rows: a state between them is torn
        for k in range(3000):
            writer.execute("BEGIN IMMEDIATE")
            writer.execute(_ROW, ("public", f"d{k}", 1))
            writer.execute(_ROW, ("team1", f"d{k}", 1))
            writer.execute("COMMIT")
            if k == 200:
                started.set()
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    try:
        assert started.wait(30)
        manifest = save_snapshot(str(d), str(tmp_path / "s.snap"))
    finally:
        thread.join(60)
        writer.close()
    assert done.is_set()
    restored = tmp_path / "restored"
    restore_snapshot(str(tmp_path / "s.snap"), str(restored))
    rows = config_rows(restored / DB_FILE_NAME)
    assert 402 <= rows <= 6000 and rows % 2 == 0, rows  # whole transactions only
    assert manifest["counts"]["config_versions"] == rows
    assert manifest["counts"]["config_namespaces"] == 2
    assert not (restored / f"{DB_FILE_NAME}-wal").exists()  # the copy stands alone
    fresh = RegistryStore()
    RegistryStateFile(str(restored)).load_into(fresh, 100.0)
    assert fresh.settings[KEY] == (0.5, 12, {"owner": "team-a"})
    assert fresh.overrides.get(KEY, IID)[:2] == (None, False)  # type: ignore[index]
    assert (restored / DB_FILE_NAME).stat().st_mode & 0o077 == 0  # private, as the node's
    # it may lack what was acknowledged since: it catches up before it counts itself
    with SqliteConfigStore(restored / DB_FILE_NAME) as db:
        assert db.load_state(empty=False) == (False, set(), False)


def test_restore_refuses_a_data_dir_a_node_runs_on(tmp_path: Path) -> None:
    d = data_dir(tmp_path)
    save_snapshot(str(d), str(tmp_path / "s.snap"))
    lock = DataDirLock(str(d), "127.0.0.1:7800")
    try:
        with pytest.raises(ConfigError, match="stop that node first"):
            restore_snapshot(str(tmp_path / "s.snap"), str(d), force=True)
    finally:
        lock.release()


def test_restore_over_data_needs_force_and_keeps_what_was_there(tmp_path: Path) -> None:
    d = data_dir(tmp_path)
    save_snapshot(str(d), str(tmp_path / "s.snap"))
    (d / f"{DB_FILE_NAME}-wal").write_bytes(b"an old WAL")  # would be replayed into the copy
    with pytest.raises(ConfigError, match="--force"):
        restore_snapshot(str(tmp_path / "s.snap"), str(d))
    assert (d / f"{DB_FILE_NAME}-wal").read_bytes() == b"an old WAL"  # nothing touched
    result = restore_snapshot(str(tmp_path / "s.snap"), str(d), force=True)
    moved = Path(result["replaced"])
    assert moved.parent == d and (moved / f"{DB_FILE_NAME}-wal").exists()
    assert (moved / STATE_FILE_NAME).exists()
    assert not (d / f"{DB_FILE_NAME}-wal").exists()
    assert config_rows(d / DB_FILE_NAME) == 0


def test_a_damaged_snapshot_is_refused_before_anything_changes(tmp_path: Path) -> None:
    d = data_dir(tmp_path)
    good = tmp_path / "s.snap"
    save_snapshot(str(d), str(good))
    members = {}
    with tarfile.open(good, "r:gz") as tar:
        for m in tar.getmembers():
            members[m.name] = tar.extractfile(m).read()  # type: ignore[union-attr]
    body = bytearray(members[STATE_FILE_NAME])
    body[200] ^= 0xFF
    members[STATE_FILE_NAME] = bytes(body)
    bad = tmp_path / "bad.snap"
    _write_tar(bad, members)
    with pytest.raises(ConfigError, match="does not match its manifest"):
        read_manifest(str(bad))
    target = tmp_path / "target"
    with pytest.raises(ConfigError, match="does not match its manifest"):
        restore_snapshot(str(bad), str(target))
    assert sorted(p.name for p in target.iterdir()) == ["LOCK"]


def test_no_path_from_the_archive_is_used(tmp_path: Path) -> None:
    d = data_dir(tmp_path)
    good = tmp_path / "s.snap"
    save_snapshot(str(d), str(good))
    with tarfile.open(good, "r:gz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    members["../escaped"] = b"x"  # not in the manifest: never read
    extra = tmp_path / "extra.snap"
    _write_tar(extra, members)
    restore_snapshot(str(extra), str(tmp_path / "t1"))
    assert not (tmp_path / "escaped").exists()
    manifest = json.loads(members["manifest.json"])
    manifest["files"]["../escaped"] = {"bytes": 1, "sha256": "0" * 64}  # named: refused
    members["manifest.json"] = json.dumps(manifest).encode()
    named = tmp_path / "named.snap"
    _write_tar(named, members)
    with pytest.raises(ConfigError, match="no readable meshreg manifest"):
        restore_snapshot(str(named), str(tmp_path / "t2"))
    assert not (tmp_path / "escaped").exists()


def test_a_database_of_a_newer_format_is_refused(tmp_path: Path) -> None:
    d = data_dir(tmp_path)
    conn = sqlite3.connect(d / STATE_FILE_NAME)
    conn.execute("UPDATE schema_version SET version = 99")
    conn.commit()
    conn.close()
    save_snapshot(str(d), str(tmp_path / "s.snap"))
    with pytest.raises(ConfigError, match="format 99"):
        restore_snapshot(str(tmp_path / "s.snap"), str(tmp_path / "t"))


def test_saving_a_directory_without_data_names_what_to_give(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="holds no meshreg database"):
        save_snapshot(str(tmp_path), str(tmp_path / "s.snap"))
    with pytest.raises(ConfigError, match="no snapshot at"):
        read_manifest(str(tmp_path / "missing.snap"))
    (tmp_path / "junk.snap").write_bytes(b"not a tar")
    with pytest.raises(ConfigError, match="not a meshreg snapshot"):
        read_manifest(str(tmp_path / "junk.snap"))


def _write_tar(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))


@pytest.mark.parametrize("bump", [1, 1_000_000])
def test_restore_with_bump_revision_raises_every_revision_and_floor(
    tmp_path: Path, bump: int
) -> None:
    """review48 F1 (etcd's --bump-revision): clients that saw revisions newer than the
    snapshot take the restored versions as newer.  A bump of 1 shifts revisions 1, 2, 3
    onto each other's values: the UNIQUE (data id, revision, ...) holds all along."""
    d = data_dir(tmp_path)
    conn = sqlite3.connect(d / DB_FILE_NAME)
    with conn:
        for data_id, revision in (("a", 1), ("a", 2), ("a", 3), ("b", 7)):
            conn.execute(_ROW, ("public", data_id, revision))
    conn.close()
    (d / FLOORS_FILE_NAME).write_text(json.dumps({"version": 1, "floors": {"12": 9}}))
    save_snapshot(str(d), str(tmp_path / "s.snap"))
    target = tmp_path / "restored"
    restore_snapshot(str(tmp_path / "s.snap"), str(target), bump_revision=bump)
    conn = sqlite3.connect(target / DB_FILE_NAME)
    rows = conn.execute("SELECT data_id, revision FROM config_versions ORDER BY seq").fetchall()
    conn.close()
    assert rows == [("a", 1 + bump), ("a", 2 + bump), ("a", 3 + bump), ("b", 7 + bump)]
    floors = json.loads((target / FLOORS_FILE_NAME).read_text())["floors"]
    # every bucket: a data id created after the snapshot starts above it (review49 F1)
    assert len(floors) == FLOOR_BUCKETS and floors["12"] == 9 + bump
    assert {r for b, r in floors.items() if b != "12"} == {bump}
    assert not (target / f"{DB_FILE_NAME}-wal").exists()
    with SqliteConfigStore(target / DB_FILE_NAME) as store:  # the node opens it as usual
        assert store.count() == 4
    with pytest.raises(ConfigError, match="--bump-revision must be"):
        restore_snapshot(str(tmp_path / "s.snap"), str(tmp_path / "x"), bump_revision=-1)


def test_a_full_disk_under_out_is_named_not_the_node_s_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operations review: ``snapshot save --out`` on a full disk said "cannot read
    .../configs.sqlite3 for the snapshot: database or disk is full", sending the operator
    to the live node's disk (83 GB free).  The copy is made beside --out: that is named."""
    d = data_dir(tmp_path)
    out = tmp_path / "backups"
    out.mkdir()
    real_connect = sqlite3.connect

    def full_copy(path: object, *args: object, **kwargs: object) -> sqlite3.Connection:
        conn = real_connect(path, *args, **kwargs)  # type: ignore[arg-type]
        if Path(str(path)).is_relative_to(out):  # the staged copy: its disk is full
            conn.execute("PRAGMA max_page_count = 1")
        return conn

    monkeypatch.setattr("meshreg.runtime.snapshot.sqlite3.connect", full_copy)
    with pytest.raises(ConfigError) as info:
        save_snapshot(str(d), str(out / "x.snap"))
    said = str(info.value)
    assert said.startswith("cannot write the snapshot's copy of") and str(out) in said, said
    assert "beside --out" in said and "cannot read" not in said
    assert not list(out.iterdir())  # nothing left behind
