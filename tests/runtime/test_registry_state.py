"""Service settings and instance overrides on disk (review13 F-drain, stage 2): what a
node keeps in its data dir, and how it merges with its peers after a restart."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from meshreg.core.store import RegistryStore
from meshreg.errors import ConfigError
from meshreg.model import InstanceId, ServiceKey
from meshreg.runtime.registry_state import STATE_FILE_NAME, RegistryStateFile

KEY = ServiceKey("public", "DEFAULT_GROUP", "orders")
OTHER = ServiceKey("ns2", "g", "pay")
I1 = InstanceId("10.1.1.1", 80, "DEFAULT")
I2 = InstanceId("10.1.1.2", 81, "east")


def _written(tmp_path: Path) -> RegistryStore:
    store = RegistryStore()
    store.register(KEY, I1, 1.0, True, {}, 1.0, 10)
    store.register(KEY, I2, 1.0, True, {}, 1.0, 11)
    store.set_service(KEY, 0.4, {"owner": "ops"}, 12)
    store.set_service(OTHER, 0.2, None, 13)  # settings of a service with no instance
    store.update(KEY, I1, None, False, 20, 2.0)
    store.update(KEY, I2, 3.5, None, 21, 2.0)
    state = RegistryStateFile(str(tmp_path))
    assert state.save_changed(store) == 2
    assert not store.settings_changed and not store.overrides.changed
    assert state.save_changed(store) == 0  # nothing changed since: no transaction
    state.close()
    return store


def test_settings_and_overrides_come_back_with_their_stamps(tmp_path: Path) -> None:
    _written(tmp_path)
    fresh = RegistryStore()  # the node after a restart: nobody registered yet
    state = RegistryStateFile(str(tmp_path))
    assert state.load_into(fresh, 100.0) == (2, 2)
    assert fresh.settings[KEY] == (0.4, 12, {"owner": "ops"})
    assert fresh.settings[OTHER] == (0.2, 13, {})
    assert fresh.overrides.get(KEY, I1)[:4] == (None, False, 0, 20)  # type: ignore[index]
    assert fresh.overrides.get(KEY, I2)[:4] == (3.5, None, 21, 0)  # type: ignore[index]
    assert not fresh.settings_changed and not fresh.overrides.changed  # nothing to write
    # the provider registers again: drained, re-weighted, as before the restart
    fresh.register(KEY, I1, 1.0, True, {}, 101.0, 30)
    fresh.register(KEY, I2, 1.0, True, {}, 101.0, 31)
    recs = fresh.get(KEY).instances  # type: ignore[union-attr]
    assert fresh.effective(KEY, recs[I1]) == (1.0, False)
    assert fresh.effective(KEY, recs[I2]) == (3.5, True)
    assert fresh.recount() == fresh.counts()


def test_a_newer_change_made_elsewhere_wins_over_the_restored_one(tmp_path: Path) -> None:
    _written(tmp_path)
    fresh = RegistryStore()
    RegistryStateFile(str(tmp_path)).load_into(fresh, 100.0)
    fresh.register(KEY, I1, 1.0, True, {}, 101.0, 30)
    # a peer cleared the drain while this node was down (stamp 25 > 20); an older copy loses
    fresh.merge(KEY, (), (), 102.0, (0.9, 5, {}), overrides=((I1, None, None, 25, 25),))
    rec = fresh.get(KEY).instances[I1]  # type: ignore[union-attr]
    assert fresh.effective(KEY, rec) == (1.0, True)
    assert fresh.settings[KEY][:2] == (0.4, 12)  # the restored settings are newer: kept


def test_a_clear_and_a_removed_setting_are_written_too(tmp_path: Path) -> None:
    store = _written(tmp_path)
    store.update(KEY, I1, None, None, 40, 3.0, clear=True)
    state = RegistryStateFile(str(tmp_path))
    assert state.save_changed(store) == 1
    fresh = RegistryStore()
    state.load_into(fresh, 5.0)
    assert fresh.overrides.get(KEY, I1)[:4] == (None, None, 40, 40)  # type: ignore[index]


def test_unreadable_rows_are_skipped_and_counted_never_trusted(tmp_path: Path) -> None:
    _written(tmp_path)
    db = sqlite3.connect(tmp_path / STATE_FILE_NAME)
    db.execute("UPDATE service_settings SET metadata = '[1, 2]' WHERE service = 'orders'")
    db.execute("UPDATE instance_field_overrides SET enabled = 7 WHERE ip = '10.1.1.1'")
    db.commit()
    db.close()
    fresh = RegistryStore()
    state = RegistryStateFile(str(tmp_path))
    assert state.load_into(fresh, 1.0) == (1, 1)
    assert state.skipped == 2 and KEY not in fresh.settings
    assert fresh.overrides.get(KEY, I1) is None


def test_a_file_that_is_not_a_database_is_a_clear_config_error(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE_NAME).write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(ConfigError) as info:
        RegistryStateFile(str(tmp_path))
    message = str(info.value)  # review13b: says it is damaged and what to do
    assert STATE_FILE_NAME in message and "damaged" in message and "move it aside" in message


def test_only_the_entries_that_changed_are_written(tmp_path: Path) -> None:
    """review13b F3: a write rewrote every row of its service (a drain in a service
    holding 3,800 overrides took 20 times as long); now only its own row is written."""
    store = _written(tmp_path)
    state = RegistryStateFile(str(tmp_path))
    db = sqlite3.connect(tmp_path / STATE_FILE_NAME)
    db.execute("UPDATE instance_field_overrides SET weight = 9.0 WHERE ip = '10.1.1.2'")
    db.commit()  # a marker on I2's row: a rewrite of the service would reset it
    store.update(KEY, I1, 2.0, None, 30, 3.0)  # I1 changes, I2 does not
    assert state.save_changed(store) == 1
    rows = dict(db.execute("SELECT ip, weight FROM instance_field_overrides").fetchall())
    assert rows == {"10.1.1.1": 2.0, "10.1.1.2": 9.0}  # I2's row untouched
    fresh = RegistryStore()
    state.load_into(fresh, 4.0)
    assert fresh.overrides.get(KEY, I1)[:4] == (2.0, False, 30, 20)  # type: ignore[index]
    db.close()
    state.close()


def test_a_commit_that_fails_raises_its_own_error_and_is_retried(tmp_path: Path) -> None:
    """An operations review, disk full: the node logged "cannot rollback - no transaction
    is active" (a failed COMMIT has rolled back already), hiding "database or disk is
    full".  The cause is raised; what changed is kept for the next try."""
    store = _written(tmp_path)
    state = RegistryStateFile(str(tmp_path))
    real = state._db

    class FullAtCommit:
        def execute(self, sql: str, *args: object) -> object:
            if sql == "COMMIT":  # as SQLite does when the commit's write fails
                real.execute("ROLLBACK")
                raise sqlite3.OperationalError("database or disk is full")
            return real.execute(sql, *args)

        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

    state._db = FullAtCommit()  # type: ignore[assignment]
    store.update(KEY, I1, 7.0, None, 40, 5.0)
    with pytest.raises(sqlite3.OperationalError, match="database or disk is full"):
        state.save_changed(store)
    assert store.overrides.changed  # kept: the next turn tries again
    state._db = real
    assert state.save_changed(store) == 1
    state.close()
