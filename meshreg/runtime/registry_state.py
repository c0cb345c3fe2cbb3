"""What an operator set on the registry, on disk: service settings and instance overrides.

Theory of operation
-------------------
The registry itself lives in memory (Distro, AP: a node that restarts gets it back from
its peers, providers register again).  What providers cannot give back is what operators
set: ``service-set`` (protection threshold, service metadata) and ``instance-set``
overrides (drains, weights; core/overrides).  A restart of every node at once would lose
them, so a node with a data dir keeps them in ``registry-state.sqlite3`` there, beside
the configuration center's database:

* ``save_changed(store)``: the services whose settings or overrides changed since the
  last call (``RegistryStore.settings_changed``, ``Overrides.changed``: written by the
  core on every change, client's or peer's) are written in **one transaction**, their
  rows replaced by what the store holds now.  The node calls it once per loop turn,
  before it waits, only when one of the two sets is not empty: operator writes are rare
  and a beat never touches them, so the beat path does no more work.  The journal is WAL
  with ``synchronous=FULL``: once written, a SIGKILL or a power loss keeps it.
* ``load_into(store, now)`` at start: every row back into the store with its own stamps
  (``RegistryStore.restore``); peers then merge with them by stamp as usual, so a newer
  change made elsewhere while this node was down wins, and an older one loses.
* A row that cannot be read (a hand-edited file) is skipped and counted, never trusted;
  a database that cannot be opened is a ``ConfigError`` naming the file (the node does
  not start on a data dir it cannot use).

This is the one registry module that does file I/O (sqlite3); the core stays pure.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from meshreg.configcenter.sqlite_store import create_private
from meshreg.core.store import RegistryStore, Settings
from meshreg.errors import ConfigError
from meshreg.model import InstanceId, ServiceKey

STATE_FILE_NAME = "registry-state.sqlite3"  # inside the node's data directory
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS service_settings (
    namespace TEXT NOT NULL,
    grp TEXT NOT NULL,
    service TEXT NOT NULL,
    protect_threshold REAL NOT NULL,
    version INTEGER NOT NULL,
    metadata TEXT NOT NULL,                  -- JSON object of strings
    PRIMARY KEY (namespace, grp, service)
);
CREATE TABLE IF NOT EXISTS instance_field_overrides (
    namespace TEXT NOT NULL,
    grp TEXT NOT NULL,
    service TEXT NOT NULL,
    ip TEXT NOT NULL,
    port INTEGER NOT NULL,
    cluster TEXT NOT NULL,
    weight REAL,                             -- NULL: not overridden
    enabled INTEGER,                         -- NULL: not overridden; 0/1
    weight_version INTEGER NOT NULL,         -- each field's own stamp (core/overrides)
    enabled_version INTEGER NOT NULL,
    PRIMARY KEY (namespace, grp, service, ip, port, cluster)
);
"""


class RegistryStateFile:
    """The node's ``registry-state.sqlite3``: service settings and instance overrides."""

    def __init__(self, directory: str) -> None:
        self.path = Path(directory) / STATE_FILE_NAME
        self.saves = 0  # transactions written (stats, tests)
        self.skipped = 0  # rows found unreadable at load
        try:
            create_private(self.path)  # (operators' drains and weights: not for every user)
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                self._db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            elif row[0] != SCHEMA_VERSION:
                raise ConfigError(
                    f"{self.path} has registry state format {row[0]}; this meshreg reads "
                    f"format {SCHEMA_VERSION}: start the node with a newer meshreg, or move "
                    "the file away (service settings and instance overrides are then lost)"
                )
        except sqlite3.DatabaseError as exc:  # the file is not a database (or is damaged)
            if isinstance(exc, sqlite3.OperationalError):  # cannot open/write it
                raise ConfigError(
                    f"cannot use {self.path} (service settings and instance overrides): "
                    f"{exc}; check --data-dir (data_dir in [node]) and its permissions"
                ) from None
            raise ConfigError(
                f"{self.path} is damaged ({exc}): move it aside (e.g. mv {self.path} "
                f"{self.path}.damaged) and start the node again; in a cluster it gets the "
                "service settings and instance overrides back from its peers, a lone node "
                "loses them (set them again)"
            ) from None
        except OSError as exc:
            raise ConfigError(
                f"cannot create {self.path}: {exc.strerror}; check --data-dir (data_dir in "
                "[node]) and its permissions"
            ) from None

    def load_into(self, store: RegistryStore, now: float) -> tuple[int, int]:
        """Restore every stored row into ``store``; returns (settings, overrides) loaded."""
        settings: list[tuple[ServiceKey, Settings]] = []
        for ns, grp, svc, threshold, version, metadata in self._db.execute(
            "SELECT namespace, grp, service, protect_threshold, version, metadata "
            "FROM service_settings"
        ):
            meta = _metadata(metadata)
            if (
                meta is None
                or type(version) is not int
                or type(threshold) not in (int, float)
                or not 0 <= threshold <= 1
                or not _names(ns, grp, svc)
            ):
                self.skipped += 1
                continue
            settings.append((ServiceKey(ns, grp, svc), (float(threshold), version, meta)))
        overrides = []
        for ns, grp, svc, ip, port, cluster, weight, enabled, w_ver, e_ver in self._db.execute(
            "SELECT namespace, grp, service, ip, port, cluster, weight, enabled, "
            "weight_version, enabled_version FROM instance_field_overrides"
        ):
            if (
                type(w_ver) is not int
                or type(e_ver) is not int
                or type(port) is not int
                or enabled not in (None, 0, 1)
                or (weight is not None and type(weight) not in (int, float))
                or not _names(ns, grp, svc, ip, cluster)
            ):
                self.skipped += 1
                continue
            entry = (
                InstanceId(ip, port, cluster),
                None if weight is None else float(weight),
                None if enabled is None else bool(enabled),
                w_ver,
                e_ver,
            )
            overrides.append((ServiceKey(ns, grp, svc), entry))
        store.restore(settings, overrides, now)
        return len(settings), len(overrides)

    def save_changed(self, store: RegistryStore) -> int:
        """Write the services whose settings or overrides changed since the last call
        (one transaction); returns how many services were written."""
        keys = store.settings_changed | store.overrides.changed.keys()
        if not keys:
            return 0
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for key in keys:
                where = (key.namespace, key.group, key.service)
                settings = store.settings.get(key)
                if settings is None:
                    db.execute(
                        "DELETE FROM service_settings WHERE namespace=? AND grp=? AND service=?",
                        where,
                    )
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO service_settings VALUES (?, ?, ?, ?, ?, ?)",
                        (*where, settings[0], settings[1], json.dumps(settings[2])),
                    )
                ids = store.overrides.changed.get(key, set())
                db.executemany(  # the changed entries alone (core/overrides, "changed")
                    "DELETE FROM instance_field_overrides WHERE namespace=? AND grp=? "
                    "AND service=? AND ip=? AND port=? AND cluster=?",
                    [(*where, iid.ip, iid.port, iid.cluster) for iid in ids],
                )
                db.executemany(
                    "INSERT INTO instance_field_overrides VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            *where,
                            iid.ip,
                            iid.port,
                            iid.cluster,
                            w,
                            None if e is None else int(e),
                            wv,
                            ev,
                        )
                        for iid, w, e, wv, ev in store.overrides.entries(key, ids)
                    ],  # fmt: skip
                )
            db.execute("COMMIT")
        except BaseException:
            # a failed COMMIT (a full disk) has rolled back already: a ROLLBACK then raised
            # "no transaction is active" in place of the cause (an operations review)
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        store.settings_changed.clear()
        store.overrides.changed.clear()
        self.saves += 1
        return len(keys)

    def close(self) -> None:
        self._db.close()


def _names(*values: Any) -> bool:
    return all(type(v) is str and v for v in values)


def _metadata(text: Any) -> dict[str, str] | None:
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return None
    if not isinstance(value, dict) or not all(
        type(k) is str and type(v) is str for k, v in value.items()
    ):
        return None
    return value


__all__ = ["STATE_FILE_NAME", "RegistryStateFile"]
