"""Durable storage of the config store: one SQLite database in the node's data directory.

Theory of operation
-------------------
Every version the core holds is one row of ``config_versions``; the current version of a
data id is not stored apart, it is recomputed by the core's merge rule when the rows are
loaded (``load_into``), in the order they were written (``seq``), which is the order that
decides which version of a revision this node acknowledged.  So the database never needs
more than inserts, a committed-flag upgrade and deletes (pruning):

* ``save(entries)`` writes versions in **one transaction** (``BEGIN IMMEDIATE`` ..
  ``COMMIT``); a version already held only has its ``committed`` flag raised.  It returns
  after the commit, so the caller may acknowledge (a reply, a peer ack) only then.
* ``remove(entries)`` deletes pruned versions, one transaction per call (the core bounds
  a prune step, so this is bounded too).
* ``write(ops)`` does saves and removals, in their order, in one transaction: the node's
  writer thread (runtime/config_commit.py) commits several loop turns at once with it.
  The connection may be handed to one other thread (``check_same_thread`` off): the
  node opens and loads the database on its loop thread, then only the writer uses it.
* The journal is WAL and ``synchronous=FULL``: a committed transaction is on disk (fsync of
  the WAL) before ``save`` returns, so SIGKILL or power loss right after an acknowledgement
  loses nothing.  ``schema_version`` holds the format's number; an older database is
  migrated in place when opened (``MIGRATIONS``, one transaction), a newer one is refused
  with a clear error rather than misread.  Version 2 added ``request_id`` (the client's id
  of the write that made a version; '' for versions of version 1 databases).  A column
  with a default that a previous release may ignore is added in place without a new
  version (``ADDED_COLUMNS``), so that release still opens the database (a downgrade):
  ``settles_at``.
* ``settles_at`` is when this node would show the version while no majority acknowledged
  it, by its own wall clock (``ConfigStore.arrival_settle``: 2.5 s after it arrived;
  0: not known, as for rows of older databases).  A save op may carry these times; at a
  load a version this node had shown before a restart is shown again at once, not
  hidden for 2.5 s after the start (a reader would step back a revision; the learner
  simulation's seed 42: a node showed r21, crashed and showed r20 again at its ready).

This is the one configcenter module that does I/O (sqlite3, os); the core stays pure.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from meshreg.configcenter.core import ConfigStore
from meshreg.configcenter.model import Change, ConfigEntry, ConfigKey, GrayRelease, GrayRule
from meshreg.errors import ConfigError

SCHEMA_VERSION = 2
DB_FILE_NAME = "configs.sqlite3"  # inside the node's data directory
FLOORS_FILE_NAME = "configs.purged-floors.json"  # beside it (``save_floors``)
# whether the store is whole (``load_intact``): "fresh" from a start with an empty store
# until the node caught up, then "intact"
STORE_STATE_FILE_NAME = "configs.state.json"
BUSY_TIMEOUT = 5.0  # s; another connection holding the write lock (only tools do) waits this

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS config_versions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,   -- arrival order (which version was acked first)
    namespace TEXT NOT NULL,
    grp TEXT NOT NULL,
    data_id TEXT NOT NULL,
    revision INTEGER NOT NULL,
    origin TEXT NOT NULL,
    md5 TEXT NOT NULL,
    gray_md5 TEXT NOT NULL,                  -- '' without a gray version
    deleted INTEGER NOT NULL,
    content TEXT NOT NULL,
    type TEXT NOT NULL,
    modified REAL NOT NULL,
    modified_by TEXT NOT NULL,
    description TEXT NOT NULL,
    tags TEXT NOT NULL,                      -- JSON [[k, v], ...]
    change TEXT NOT NULL,
    gray TEXT,                               -- JSON or NULL
    committed INTEGER NOT NULL,
    request_id TEXT NOT NULL DEFAULT '',     -- the write's request id ('' : none), v2
    settles_at REAL NOT NULL DEFAULT 0,      -- shown unacknowledged from (0: unknown)
    UNIQUE (namespace, grp, data_id, revision, origin, md5, gray_md5, deleted)
);
"""

_COLUMNS = (
    "namespace, grp, data_id, revision, origin, md5, gray_md5, deleted, content, type, "
    "modified, modified_by, description, tags, change, gray, committed, request_id, "
    "settles_at"
)
# version -> the statements that take a database of that version to the next one
MIGRATIONS = {
    1: ("ALTER TABLE config_versions ADD COLUMN request_id TEXT NOT NULL DEFAULT ''",),
}
# columns added without a new schema version (a previous release reads and writes the
# table without them): name -> its ALTER, run at an open that finds it missing
ADDED_COLUMNS = {
    "settles_at": "ALTER TABLE config_versions ADD COLUMN settles_at REAL NOT NULL DEFAULT 0",
}
# a save or a delete: (True: save, False: delete), the versions, and for a save, per version
# when this node shows it unacknowledged (``settles_at``; empty, or 0: not known)
WriteOp = tuple[bool, Sequence[ConfigEntry], Sequence[float]]
_UNIQUE = "namespace, grp, data_id, revision, origin, md5, gray_md5, deleted"
ROWS_PER_INSERT = 256  # versions per INSERT statement (within SQLite's variable limit): one
# statement is one sqlite3 step, so the writer thread takes the GIL back once per statement,
# not once per row (with a busy loop thread, each take waits up to the switch interval)
_PLACEHOLDERS = f"({', '.join('?' * len(_COLUMNS.split(',')))})"


@functools.lru_cache(maxsize=ROWS_PER_INSERT)
def _upsert(rows: int) -> str:
    """INSERT of ``rows`` versions; one already held only has its committed flag raised
    (an upsert applies its rows in order, so a version twice in one statement is fine)."""
    return (
        f"INSERT INTO config_versions ({_COLUMNS}) VALUES {', '.join([_PLACEHOLDERS] * rows)} "
        f"ON CONFLICT ({_UNIQUE}) DO UPDATE SET committed = MAX(committed, excluded.committed)"
    )


_DELETE = "DELETE FROM config_versions WHERE " + " AND ".join(
    f"{c.strip()} = ?" for c in _UNIQUE.split(",")
)


def create_private(path: Path) -> None:
    """Create ``path`` empty, readable by its owner only, if it does not exist: SQLite
    gives its -wal and -shm files the database file's mode, so configs (connection
    strings, passwords) never land in a file every local user may read (review14b)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


class SqliteConfigStore:
    """The config versions of one node, on disk (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # created by this open: whatever the state file beside it says, the store is empty
        # (``load_state``: the database alone deleted, to "reset" the node's configs)
        self.created = not self.path.exists()
        try:
            create_private(self.path)
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
            )
        except (sqlite3.Error, OSError) as exc:
            raise ConfigError(f"cannot open the config database {self.path}: {exc}") from None
        self._conn = conn
        getlimit = getattr(conn, "getlimit", None)  # Python 3.11+; else SQLite's old 999
        limit = getlimit(9) if getlimit is not None else 999  # 9: SQLITE_LIMIT_VARIABLE_NUMBER
        self._rows_per_insert = max(1, min(ROWS_PER_INSERT, limit // len(_COLUMNS.split(","))))
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise ConfigError(f"{self.path}: SQLite refused WAL mode (got {mode!r})")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            elif type(row[0]) is int and 0 < row[0] < SCHEMA_VERSION:
                self._migrate(row[0])
            elif row[0] != SCHEMA_VERSION:
                raise ConfigError(
                    f"{self.path} holds config schema version {row[0]}; this meshreg reads "
                    f"version {SCHEMA_VERSION}: use the matching meshreg, or move the file away"
                )
            self._add_columns()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise ConfigError(f"{self.path} is not a usable config database: {exc}") from None
        except ConfigError:
            conn.close()
            raise

    def close(self) -> None:
        self._conn.close()

    def defer_checkpoints(self, wal_keep_bytes: int) -> None:
        """This connection's commits never copy the WAL into the database
        (``wal_autocheckpoint=0``: runtime/config_commit.py ``WalCheckpointer`` does), and
        when the WAL starts over, its file is cut back to ``wal_keep_bytes``
        (``journal_size_limit``: a WAL that grew while copies lagged does not stay big)."""
        self._conn.execute("PRAGMA wal_autocheckpoint=0")
        self._conn.execute(f"PRAGMA journal_size_limit={int(wal_keep_bytes)}")

    def _add_columns(self) -> None:
        """Add the ``ADDED_COLUMNS`` a database lacks (one written by a previous release;
        another connection adding it at the same moment is no error)."""
        conn = self._conn
        for column, statement in ADDED_COLUMNS.items():
            held = {r[1] for r in conn.execute("PRAGMA table_info(config_versions)")}
            if column in held:
                continue
            try:
                conn.execute(statement)
            except sqlite3.OperationalError:
                held = {r[1] for r in conn.execute("PRAGMA table_info(config_versions)")}
                if column not in held:
                    raise

    def _migrate(self, version: int) -> None:
        """Bring a database of an older schema version to ``SCHEMA_VERSION`` (one
        transaction: a crash midway leaves it at its old version, migrated again)."""

        def work(conn: sqlite3.Connection) -> None:
            for v in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[v]:
                    conn.execute(statement)
            conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))

        self._transaction(work)

    def __enter__(self) -> SqliteConfigStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def save(self, entries: Iterable[ConfigEntry]) -> None:
        """Insert versions (or raise their committed flag), in one transaction, durably."""
        self.write([(True, tuple(entries), ())])

    def remove(self, entries: Iterable[ConfigEntry]) -> None:
        """Delete versions (pruned by the core), in one transaction."""
        self.write([(False, tuple(entries), ())])

    def write(self, ops: Iterable[WriteOp]) -> None:
        """``(True, entries, settles_at)``: save them; ``(False, entries, ())``: delete them;
        every op in its order, in ONE transaction, durable when this returns (nothing of
        it if it raises)."""
        # Consecutive saves go in one INSERT (up to _rows_per_insert rows), whatever ops
        # they came in: a loop turn queues one op per version, and one statement per
        # version was one sqlite3 step (and GIL handoff) per version.  Rows keep their
        # order, so the seq order, hence what load_into rebuilds, is the same.
        steps: list[tuple[str, list[Any]]] = []  # (statement, parameters) or executemany
        rows: list[tuple[Any, ...]] = []  # the saves since the last removal, in order

        def insert() -> None:
            for i in range(0, len(rows), self._rows_per_insert):
                chunk = rows[i : i + self._rows_per_insert]
                steps.append((_upsert(len(chunk)), [v for row in chunk for v in row]))
            rows.clear()

        for save, entries, settles in ops:
            if save:
                rows.extend(
                    map(_row, entries)
                    if not settles
                    else (_row(e, at) for e, at in zip(entries, settles, strict=True))
                )
            else:
                keys = [_row(e)[:8] for e in entries]
                if keys:
                    insert()
                    steps.append(("", keys))
        insert()
        if len(steps) == 1 and steps[0][0]:  # one statement: its own transaction (autocommit)
            self._conn.execute(*steps[0])  # one step, not three (BEGIN, INSERT, COMMIT)
        elif steps:
            self._transaction(lambda c: _steps(c, steps))

    def load_into(self, store: ConfigStore) -> int:
        """Apply every stored version to ``store`` in write order (with the time it is
        shown unacknowledged, where known: ``settles_at``); how many were read."""
        count = 0
        for row in self._conn.execute(f"SELECT {_COLUMNS} FROM config_versions ORDER BY seq"):
            entry = _entry(row)
            store.apply(entry)
            if row[-1] and not entry.committed:
                store.restore_settle(entry, row[-1])
            count += 1
        return count

    @property
    def floors_path(self) -> Path:
        """The purged-tombstone revision floors (``ConfigStore.purged_floors``), beside the
        database: a small JSON map written only when a purge raised one."""
        return self.path.with_name(FLOORS_FILE_NAME)

    def load_floors(self, store: ConfigStore) -> None:
        """Read the floors into ``store`` (none yet: nothing to read)."""
        try:
            raw = json.loads(self.floors_path.read_text(encoding="utf-8"))
            floors = {int(b): int(r) for b, r in raw["floors"].items()}
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(
                f"{self.floors_path} is not a readable revision floor file ({exc}); it keeps "
                "re-created data ids from starting again at revision 1: restore it, or move "
                "it away to start without it"
            ) from None
        for bucket, revision in floors.items():
            if revision > store.purged_floors.get(bucket, 0):
                store.purged_floors[bucket] = revision

    def save_floors(self, floors: dict[int, int]) -> None:
        """Write the floors durably (a temporary file, fsync, rename, fsync of the
        directory) before the tombstones they come from are deleted; raises OSError."""
        body = json.dumps({"version": 1, "floors": {str(b): r for b, r in sorted(floors.items())}})
        _write_durably(self.floors_path, body)

    @property
    def state_path(self) -> Path:
        return self.path.with_name(STORE_STATE_FILE_NAME)

    def load_state(self, empty: bool, join_existing: bool = False) -> StoreState:
        """Whether this store is whole, the members seen whole (``ConfigReplicator.
        seen_whole``), and whether it joins a cluster that holds configs.  Not whole: a
        store that started empty (``empty``: nothing loaded; a new or wiped data
        directory) until ``save_state`` says so (the node caught up), across restarts in
        between (a node killed while catching up may hold some versions then, not all).
        Joining: not whole, and started with ``join_existing`` (``--config-join-existing``)
        since it started empty; kept across those restarts too (one without the flag
        must not make it a new member).  A data directory without the file (an older
        version's) is whole unless empty; not a file saying whole beside an empty database
        created by this open (deleted alone).  The answer is on disk before it is returned;
        raises ConfigError if the file is unreadable, OSError if it cannot be written."""
        try:
            raw = json.loads(self.state_path.read_text(encoding="utf-8"))
            state, seen = raw["store"], raw.get("seen", [])
            if state not in ("fresh", "intact"):
                raise ValueError(f"unknown store state {state!r}")
            if not isinstance(seen, list) or not all(isinstance(s, str) for s in seen):
                raise ValueError("'seen' is not a list of addresses")
            if type(raw.get("joining", False)) is not bool:
                raise ValueError("'joining' is not true or false")
            intact = state == "intact" and not self.created  # (review46 F2: with a purged
            # floors file beside it, a database created anew was taken for a whole store)
            joining = not intact and (raw.get("joining", False) or join_existing)
            if (intact, joining) != (state == "intact", raw.get("joining", False)):
                self.save_state(intact, set(seen), joining)
            return StoreState(intact, set(seen), joining)
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"{self.state_path} is not a readable store state file ({exc}); it says "
                "whether this node's configs were caught up since its data directory "
                "started empty: move it away to start as a node whose store is whole (only "
                "if this data directory was never wiped), or empty the data directory"
            ) from None
        intact = not empty
        joining = join_existing and not intact
        self.save_state(intact, set(), joining)
        return StoreState(intact, set(), joining)

    def save_state(self, intact: bool, seen: set[str], joining: bool = False) -> None:
        """Write the store's state durably (raises OSError)."""
        state = {"version": 1, "store": "intact" if intact else "fresh", "seen": sorted(seen)}
        if joining and not intact:
            state["joining"] = True
        _write_durably(self.state_path, json.dumps(state))
        if intact:
            self.created = False  # caught up since: what the file says holds from now

    def count(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM config_versions").fetchone()[0])

    def _transaction(self, work: Any) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            work(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # a failed COMMIT (an fsync error) may leave it open
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            raise


def _steps(conn: sqlite3.Connection, steps: list[tuple[str, list[Any]]]) -> None:
    for sql, params in steps:
        if sql:
            conn.execute(sql, params)
        else:
            conn.executemany(_DELETE, params)


class StoreState(NamedTuple):
    """What ``configs.state.json`` says (``SqliteConfigStore.load_state``)."""

    intact: bool  # whole: not started empty since it last caught up
    seen: set[str]  # the members whose digests came from a whole store
    joining: bool = False  # not whole, and joins a cluster that holds configs


def mark_store_fresh(data_dir: str | os.PathLike[str]) -> None:
    """The configs in ``data_dir`` count as a store that started empty (``load_intact``):
    a snapshot restored into one member lacks what was acknowledged since it was taken,
    so the node catches up from its peers before it counts itself (raises OSError)."""
    body = json.dumps({"version": 1, "store": "fresh"})
    _write_durably(Path(data_dir) / STORE_STATE_FILE_NAME, body)


def _write_durably(path: Path, body: str) -> None:
    """``body`` into ``path`` atomically and durably: a temporary file, fsync, rename,
    fsync of the directory; raises OSError."""
    tmp = path.with_name(path.name + ".tmp")
    # 0600 as the databases (an operations review found this file 0644)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8") as fh:
        fh.write(body)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def database_path(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / DB_FILE_NAME


def _row(e: ConfigEntry, settles_at: float = 0.0) -> tuple[Any, ...]:
    gray = None
    if e.gray is not None:
        g = e.gray
        gray = json.dumps(
            {
                "content": g.content,
                "type": g.type,
                "md5": g.md5,
                "labels": [list(p) for p in g.rule.labels],
                "clients": sorted(g.rule.addresses),
            }
        )
    return (
        e.key.namespace,
        e.key.group,
        e.key.data_id,
        e.revision,
        e.origin,
        e.md5,
        e.gray.md5 if e.gray is not None else "",
        int(e.deleted),
        e.content,
        e.type,
        e.modified,
        e.modified_by,
        e.description,
        json.dumps([list(p) for p in e.tags]) if e.tags else "[]",  # (json.dumps([]))
        e.change.value,
        gray,
        int(e.committed),
        e.request_id,
        settles_at,
    )


def _entry(row: tuple[Any, ...]) -> ConfigEntry:
    (ns, grp, data_id, revision, origin, md5, _gm, deleted, content, kind, modified, by, desc,
     tags, change, gray_json, committed, request_id, _settles_at) = row  # fmt: skip
    gray = None
    if gray_json is not None:
        g = json.loads(gray_json)
        rule = GrayRule(tuple((k, v) for k, v in g["labels"]), frozenset(g["clients"]))
        gray = GrayRelease(g["content"], g["type"], g["md5"], rule)
    return ConfigEntry(
        key=ConfigKey(ns, grp, data_id),
        revision=revision,
        origin=origin,
        content=content,
        type=kind,
        md5=md5,
        modified=modified,
        modified_by=by,
        description=desc,
        tags=tuple((k, v) for k, v in json.loads(tags)),
        deleted=bool(deleted),
        change=Change(change),
        gray=gray,
        committed=bool(committed),
        request_id=request_id,
    )
