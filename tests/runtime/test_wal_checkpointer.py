"""No commit copies the WAL into the database; the checkpoint thread does
(runtime/config_commit.py ``WalCheckpointer``, docs/CONFIG.md)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from helpers import wait_until

from meshreg.configcenter.core import ConfigStore
from meshreg.configcenter.model import ConfigEntry, ConfigKey
from meshreg.configcenter.sqlite_store import SqliteConfigStore
from meshreg.runtime.config_commit import ThreadWriter, Turn, WalCheckpointer

PAGE = 4096
AUTO_PAGES = 1000  # SQLite's default wal_autocheckpoint


def versions(count: int, size: int) -> list[ConfigEntry]:
    core = ConfigStore("n1")
    key = ConfigKey("public", "DEFAULT_GROUP", "big.txt")
    return [core.publish(key, f"{i:08d}" + "x" * size, now=float(i)) for i in range(count)]


def wal_bytes(path: Path) -> int:
    try:
        return os.path.getsize(f"{path}-wal")
    except FileNotFoundError:
        return 0


def test_commits_without_autocheckpoint_let_the_wal_grow_and_a_copy_truncates_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.db"
    db = SqliteConfigStore(path)
    db.defer_checkpoints(16 << 20)
    for entry in versions(400, 20_000):  # ~8 MB: twice the 1,000 pages of the default
        db.save([entry])
    # no commit copied it: with the default, the commit past 1,000 pages copies it and
    # the next commits write the file from its start again (it stays ~4 MB)
    assert wal_bytes(path) > 1.5 * AUTO_PAGES * PAGE
    copier = WalCheckpointer(db, interval=0.01, truncate_bytes=1 << 20)
    try:
        copier.written()
        assert wait_until(lambda: copier.checkpoints >= 1, 10.0)
        assert copier.truncates == 1 and copier.errors == 0
        assert wal_bytes(path) == 0  # TRUNCATE: copied and emptied
    finally:
        assert copier.close(10.0)
    db.close()
    again = SqliteConfigStore(path)
    assert again.count() == 400
    again.close()


def test_the_writer_thread_commits_never_copy_and_its_checkpointer_does(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    db = SqliteConfigStore(path)
    writer = ThreadWriter(db)
    checkpointer = writer.checkpointer
    try:
        entries = versions(200, 20_000)
        for seq, entry in enumerate(entries, 1):
            turn = Turn(seq, ops=[(True, (entry,), ())], versions=1)
            writer.submit([turn])
        done: list[int] = []

        def all_done() -> bool:
            done.extend(d.seq for d in writer.take() if d.error is None)
            return len(done) == 200

        assert wait_until(all_done, 20.0)
        assert writer.transactions >= 1
        # PASSIVE copies after commits (at most every 0.25 s): at least one ran
        assert wait_until(lambda: checkpointer.checkpoints >= 1, 10.0)
        assert checkpointer.errors == 0 and checkpointer.truncates == 0
    finally:
        assert writer.close(10.0)
    assert not checkpointer._thread.is_alive()
    # the writer's connection, closed last, copied the rest and removed the WAL
    assert not os.path.exists(f"{path}-wal")
    again = SqliteConfigStore(path)
    assert again.count() == 200
    again.close()


def test_a_failed_copy_is_counted_and_the_next_commit_tries_again(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    db = SqliteConfigStore(path)
    db.defer_checkpoints(16 << 20)
    db.save(versions(1, 10))
    copier = WalCheckpointer(db, interval=0.01)
    real = copier._conn
    try:
        copier._conn = _Failing()  # type: ignore[assignment]
        copier.written()
        assert wait_until(lambda: copier.errors >= 1, 10.0)
        assert copier.checkpoints == 0
        copier._conn = real
        copier.written()
        assert wait_until(lambda: copier.checkpoints >= 1, 10.0)
    finally:
        copier._conn = real
        assert copier.close(10.0)
    db.close()


class _Failing:
    def execute(self, *args: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    def close(self) -> None:
        pass
