"""A node's data directory in one file, taken while the node runs: backup and restore.

Theory of operation
-------------------
What a meshreg cluster cannot get back from its providers lives in each node's data
directory: the configuration center's database (``configs.sqlite3``, with its revision
floors ``configs.purged-floors.json``) and what operators set on the registry
(``registry-state.sqlite3``: protection thresholds, service metadata, drains, weights).
Every node holds all of it (configs are stored on every node, settings are replicated),
so one node's snapshot is a backup of the cluster, as ``etcdctl snapshot save`` or
``consul snapshot save``.

* ``save_snapshot(data_dir, out)``: each database is copied with SQLite's online backup
  API in one step, so each copy is one committed state of its database, taken while the
  node goes on writing (WAL: the read does not block the node; a file copy of a live
  database and its ``-wal`` is not safe).  The configs first, then the floors file: a
  floor read later is only higher, which is safe (it keeps re-created data ids above
  it).  The files go into one tar (gzip) with ``manifest.json``: format, meshreg
  version, time, each file's size and SHA-256, and counts for ``inspect``; written to a
  temporary name, fsynced, renamed.
* ``restore_snapshot(archive, data_dir, force)``: takes the data dir's lock (a running
  node there is an error naming it), checks every file's checksum, SQLite's integrity
  check and the schema versions against this meshreg *before* it touches the data dir;
  files already there are moved into ``replaced-<time>/`` (with ``force``; without it,
  a data dir that holds databases is refused), stale ``-wal``/``-shm`` files with them
  (a WAL left beside another database would be replayed into it).  Only the members the
  manifest names are read: no path from the archive is ever used.
* What a restored node does: it starts from the snapshot and merges with its peers as
  after any restart (configs by the documented rule, settings by stamp), so restore
  **every** data dir of a lost cluster from one snapshot, or one and start the others
  empty (they catch up from it).  Restoring an old snapshot into one member of a live
  cluster brings nothing back that the cluster changed since: newer versions win.

This module does file I/O only; it is run by the CLI (``meshreg snapshot``), not by nodes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from meshreg import __version__
from meshreg.configcenter.core import FLOOR_BUCKETS
from meshreg.configcenter.sqlite_store import (
    DB_FILE_NAME,
    FLOORS_FILE_NAME,
    STORE_STATE_FILE_NAME,
    mark_store_fresh,
)
from meshreg.configcenter.sqlite_store import SCHEMA_VERSION as CONFIGS_SCHEMA
from meshreg.errors import ConfigError
from meshreg.runtime.data_dir import DataDirLock
from meshreg.runtime.registry_state import SCHEMA_VERSION as REGISTRY_SCHEMA
from meshreg.runtime.registry_state import STATE_FILE_NAME

SNAPSHOT_FORMAT = 1
MANIFEST = "manifest.json"
# the databases a snapshot holds, with the schema version this meshreg reads
DATABASES = {DB_FILE_NAME: CONFIGS_SCHEMA, STATE_FILE_NAME: REGISTRY_SCHEMA}
MEMBERS = (DB_FILE_NAME, STATE_FILE_NAME, FLOORS_FILE_NAME)  # the order they are taken in
MAX_MANIFEST_BYTES = 1 << 20


def save_snapshot(data_dir: str, out: str, now: float | None = None) -> dict[str, Any]:
    """Write a snapshot of ``data_dir`` (a running node's or not) to ``out``; returns its
    manifest.  Raises ConfigError naming what is missing or cannot be read/written."""
    source = Path(data_dir)
    if not (source / DB_FILE_NAME).is_file() and not (source / STATE_FILE_NAME).is_file():
        raise ConfigError(
            f"{source} holds no meshreg database ({DB_FILE_NAME}, {STATE_FILE_NAME}): give "
            "the data dir of a node (--data-dir, data_dir in [node]; `meshreg stats` on the "
            "node names it)"
        )
    taken = time.time() if now is None else now
    target = Path(out)
    if not target.parent.is_dir():  # (review30 F7: an unmounted backup volume: a traceback)
        raise ConfigError(
            f"cannot write the snapshot {target}: the directory {target.parent} does not "
            "exist (is the backup volume mounted?)"
        )
    try:
        scratch = tempfile.TemporaryDirectory(prefix=".meshreg-snapshot-", dir=target.parent)
    except OSError as exc:
        raise ConfigError(f"cannot write the snapshot {target}: {exc.strerror}") from None
    with scratch as tmp:
        copies: dict[str, Path] = {}
        for name in MEMBERS:
            path = source / name
            if not path.is_file():
                continue  # a node that never stored a setting has no registry-state yet
            copy = Path(tmp) / name
            if name in DATABASES:
                _backup_database(path, copy)
            else:
                shutil.copyfile(path, copy)
            copies[name] = copy
        manifest = {
            "format": SNAPSHOT_FORMAT,
            "meshreg": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(taken)),
            "created_unix": taken,
            "data_dir": str(source.resolve()),
            "node": _lock_holder(source),
            "files": {name: _file_facts(copy) for name, copy in copies.items()},
            "counts": _counts(copies),
        }
        partial = target.with_name(f".{target.name}.partial")
        try:
            with open(partial, "wb") as raw:
                with tarfile.open(fileobj=raw, mode="w:gz") as tar:
                    body = json.dumps(manifest, indent=2, sort_keys=True).encode()
                    info = tarfile.TarInfo(MANIFEST)
                    info.size, info.mtime, info.mode = len(body), int(taken), 0o600
                    tar.addfile(info, io.BytesIO(body))
                    for name, copy in copies.items():
                        tar.add(copy, arcname=name, recursive=False, filter=_private)
                raw.flush()
                os.fsync(raw.fileno())
            os.chmod(partial, 0o600)  # configs hold passwords: as private as the data dir
            os.replace(partial, target)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise ConfigError(f"cannot write the snapshot {target}: {exc.strerror}") from None
    _fsync_dir(target.parent)
    return manifest


def read_manifest(archive: str) -> dict[str, Any]:
    """The manifest of a snapshot, after checking every file's checksum against it."""
    with _open_archive(archive) as tar:
        manifest = _manifest(tar, archive)
        for name, facts in manifest["files"].items():
            digest = hashlib.sha256()
            size = 0
            for chunk in _member_chunks(tar, name, archive, _listed_size(facts)):
                digest.update(chunk)
                size += len(chunk)
            _check_facts(archive, name, facts, size, digest.hexdigest())
    return manifest


MAX_BUMP_REVISION = 1 << 50  # revisions stay exact in a JSON or JavaScript number (2**53)


def restore_snapshot(
    archive: str, data_dir: str, force: bool = False, bump_revision: int = 0
) -> dict[str, Any]:
    """Put a snapshot's files into ``data_dir`` (no node may run there); returns the
    manifest plus ``replaced`` (where the files found there went, or None).
    ``bump_revision``: every config revision raised by that much (``bump_revisions``)."""
    if type(bump_revision) is not int or not 0 <= bump_revision <= MAX_BUMP_REVISION:
        raise ConfigError(f"--bump-revision must be 0..{MAX_BUMP_REVISION}, got {bump_revision!r}")
    target = Path(data_dir)
    try:
        lock = DataDirLock(str(target), "meshreg snapshot restore")
    except ConfigError as exc:  # a node runs there (or the dir cannot be made)
        raise ConfigError(
            f"cannot restore into {target}: {exc}".split(": every node needs")[0]
            + "; stop that node first (a node reads its data dir only at start)"
        ) from None
    try:
        with tempfile.TemporaryDirectory(prefix=".restore-", dir=target) as tmp:
            manifest = _extract_checked(archive, Path(tmp))
            if bump_revision:
                bump_revisions(Path(tmp), bump_revision)
            present = [
                p
                for name in (*MEMBERS, STORE_STATE_FILE_NAME)
                for p in (target / name, target / f"{name}-wal", target / f"{name}-shm")
                if p.exists()
            ]
            replaced = None
            if present:
                if not force:
                    raise ConfigError(
                        f"{target} already holds a node's data ("
                        + ", ".join(p.name for p in present)
                        + "): restore into an empty data dir, or pass --force to move these "
                        "files into a replaced-<time>/ folder there first"
                    )
                stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
                replaced = target / f"replaced-{stamp}"
                replaced.mkdir(mode=0o700)
                for p in present:
                    os.replace(p, replaced / p.name)
            names = set(manifest["files"])
            if bump_revision:  # (written by the bump when the snapshot had none)
                names.add(FLOORS_FILE_NAME)
            for name in sorted(names):
                os.chmod(Path(tmp) / name, 0o600)  # configs hold passwords (as the node's)
                os.replace(Path(tmp) / name, target / name)
            # it may lack what was acknowledged since: the node catches up before it
            # counts itself (all members restored: they catch up from each other)
            mark_store_fresh(target)
            _fsync_dir(target)
    finally:
        lock.release()
    return {**manifest, "replaced": None if replaced is None else str(replaced)}


def bump_revisions(folder: Path, bump: int) -> None:
    """Raise every config version's revision, and every purged floor, by ``bump`` (etcd's
    ``snapshot restore --bump-revision``).  Clients that ran through the outage hold a
    revision floor per data id (they never step back); the cluster restored from an older
    snapshot starts below it, so their listeners were never called again and their reads
    were refused until each data id's revision passed the floor (review48 F1).  Raised
    above every revision given since the snapshot, the restored versions and the writes
    after them are newer than anything a client saw.  Every member restored with the
    same snapshot and bump holds the same revisions."""
    db = folder / DB_FILE_NAME
    if db.exists():
        conn = sqlite3.connect(db)
        try:
            with conn:  # through negatives: UNIQUE holds after each row's change
                conn.execute("UPDATE config_versions SET revision = -(revision + ?)", (bump,))
                conn.execute("UPDATE config_versions SET revision = -revision")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # all in the file moved
        finally:
            conn.close()
    # every bucket's floor too, not only those of purged tombstones: a data id created
    # after the snapshot (not in it) starts above N, not at 1 again (review49 F1)
    floors = folder / FLOORS_FILE_NAME
    held: dict[str, int] = {}
    if floors.exists():
        try:
            body = json.loads(floors.read_text(encoding="utf-8"))
            held = {str(b): int(r) for b, r in body["floors"].items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"the snapshot's {FLOORS_FILE_NAME} is unreadable ({exc})") from None
    raised = {str(b): held.get(str(b), 0) + bump for b in range(FLOOR_BUCKETS)}
    floors.write_text(json.dumps({"version": 1, "floors": raised}), encoding="utf-8")


def _extract_checked(archive: str, into: Path) -> dict[str, Any]:
    """Every file of the manifest into ``into``, each checked (size, SHA-256, SQLite's
    integrity check, a schema version this meshreg reads)."""
    with _open_archive(archive) as tar:
        manifest = _manifest(tar, archive)
        for name, facts in manifest["files"].items():
            path = into / name
            digest = hashlib.sha256()
            size = 0
            # (review30 F5: a member bigger than the manifest says was written whole first)
            chunks = _member_chunks(tar, name, archive, _listed_size(facts))
            try:
                with open(path, "wb") as fh:
                    for chunk in chunks:
                        digest.update(chunk)
                        size += len(chunk)
                        fh.write(chunk)
                    fh.flush()
                    os.fsync(fh.fileno())
            except OSError as exc:  # a full disk, a file size limit
                raise ConfigError(
                    f"cannot write {name} into {into.parent} while restoring {archive}: "
                    f"{exc.strerror}; nothing in the data dir was changed"
                ) from None
            _check_facts(archive, name, facts, size, digest.hexdigest())
            if name in DATABASES:
                _check_database(archive, name, path, DATABASES[name])
    return manifest


def _backup_database(path: Path, copy: Path) -> None:
    try:
        src = sqlite3.connect(path)  # reads only (read-only mode cannot open a WAL alone)
        try:
            dst = sqlite3.connect(copy)
            try:
                src.backup(dst)  # all pages in one step: one committed state
                dst.execute("PRAGMA journal_mode=DELETE")  # the copy stands alone (no -wal)
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorcode", None) in _WRITE_ERRORS or not _writable(copy):
            # the copy is made beside --out: a full disk there blamed the live node's data
            # dir (an operations review of 2026-12-07: "cannot read .../configs.sqlite3 ...
            # database or disk is full" with 83 GB free on that disk)
            raise ConfigError(
                f"cannot write the snapshot's copy of {path.name} in {copy.parent} (beside "
                f"--out): {exc}; free space there, or give --out on another disk"
            ) from None
        raise ConfigError(
            f"cannot read {path} for the snapshot: {exc}; check that it is a meshreg data "
            "dir and that this user may read it"
        ) from None


_WRITE_ERRORS = (13,)  # SQLITE_FULL: the copy's writes (a read fails otherwise)


def _writable(copy: Path) -> bool:
    """Whether the copy's directory takes a file (a read-only or full place fails)."""
    try:
        with tempfile.NamedTemporaryFile(dir=copy.parent, prefix=".probe-"):
            return True
    except OSError:
        return False


def _check_database(archive: str, name: str, path: Path, readable: int) -> None:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            ok = conn.execute("PRAGMA integrity_check").fetchone()[0]
            row = conn.execute("SELECT version FROM schema_version").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise ConfigError(f"{name} in {archive} is not a readable database: {exc}") from None
    if ok != "ok":
        raise ConfigError(f"{name} in {archive} fails SQLite's integrity check: {ok}")
    if row is None or type(row[0]) is not int or row[0] > readable:
        raise ConfigError(
            f"{name} in {archive} has format {row and row[0]}; this meshreg reads up to "
            f"{readable}: restore it with the meshreg version that took it, or a newer one"
        )


def _counts(copies: dict[str, Path]) -> dict[str, int]:
    counts: dict[str, int] = {}
    if DB_FILE_NAME in copies:
        with sqlite3.connect(copies[DB_FILE_NAME]) as conn:
            counts["config_versions"] = conn.execute(
                "SELECT COUNT(*) FROM config_versions"
            ).fetchone()[0]
            counts["data_ids"], counts["config_namespaces"] = conn.execute(
                "SELECT COUNT(DISTINCT namespace || char(0) || grp || char(0) || data_id), "
                "COUNT(DISTINCT namespace) FROM config_versions"
            ).fetchone()
        conn.close()
    if STATE_FILE_NAME in copies:
        with sqlite3.connect(copies[STATE_FILE_NAME]) as conn:
            counts["service_settings"] = conn.execute(
                "SELECT COUNT(*) FROM service_settings"
            ).fetchone()[0]
            counts["instance_overrides"] = conn.execute(  # in force (not cleared ones)
                "SELECT COUNT(*) FROM instance_field_overrides"
                " WHERE weight IS NOT NULL OR enabled IS NOT NULL"
            ).fetchone()[0]
        conn.close()
    return counts


def _file_facts(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def _listed_size(facts: Any) -> int:
    """The size the manifest gives a file: a member must be exactly that big (read no
    further); a manifest without one matches no member."""
    size = facts.get("bytes") if isinstance(facts, dict) else None
    return size if type(size) is int and size >= 0 else -1


def _check_facts(archive: str, name: str, facts: Any, size: int, sha256: str) -> None:
    if not isinstance(facts, dict) or facts.get("bytes") != size or facts.get("sha256") != sha256:
        raise ConfigError(
            f"{name} in {archive} does not match its manifest (size or SHA-256): the file "
            "is damaged or was changed; take another snapshot"
        )


def _open_archive(archive: str) -> tarfile.TarFile:
    try:
        return tarfile.open(archive, mode="r:gz")
    except FileNotFoundError:
        raise ConfigError(f"no snapshot at {archive}: check the path") from None
    except (EOFError, zlib.error) as exc:  # cut in its first bytes (review31 F3)
        raise _damaged(archive, exc) from None
    except (OSError, tarfile.TarError) as exc:
        raise ConfigError(
            f"{archive} is not a meshreg snapshot (a gzip tar from `meshreg snapshot save`): {exc}"
        ) from None


def _manifest(tar: tarfile.TarFile, archive: str) -> dict[str, Any]:
    body = b"".join(_member_chunks(tar, MANIFEST, archive, MAX_MANIFEST_BYTES))
    try:
        manifest = json.loads(body)
    except ValueError:
        manifest = None
    if (
        not isinstance(manifest, dict)
        or not isinstance(manifest.get("files"), dict)
        or not set(manifest["files"]) <= set(MEMBERS)
    ):
        raise ConfigError(f"{archive} has no readable meshreg manifest ({MANIFEST})")
    if manifest.get("format") != SNAPSHOT_FORMAT:
        raise ConfigError(
            f"{archive} is snapshot format {manifest.get('format')!r}; this meshreg reads "
            f"format {SNAPSHOT_FORMAT}: use the meshreg version that took it"
        )
    return manifest


def _member_chunks(
    tar: tarfile.TarFile, name: str, archive: str, limit: int | None = None
) -> Iterator[bytes]:
    """The bytes of one regular-file member, by name (never a path from the archive), at
    most ``limit`` of them (a bigger member is refused before any is read).  A truncated
    or damaged archive is a ConfigError (review30 F6: gzip's EOFError reached click, which
    printed only "Aborted!")."""
    try:
        member = tar.getmember(name)
    except KeyError:
        raise ConfigError(f"{archive} lacks {name}: it is not a complete snapshot") from None
    except (EOFError, OSError, tarfile.TarError, zlib.error) as exc:
        raise _damaged(archive, exc) from None
    if not member.isfile() or (limit is not None and member.size > limit):
        raise ConfigError(
            f"{name} in {archive} does not match its manifest (not a regular file of the "
            "size it gives): the file is damaged or was changed; take another snapshot"
        )
    fh = tar.extractfile(member)
    assert fh is not None  # a regular file
    try:
        while chunk := fh.read(1 << 20):
            yield chunk
    except (EOFError, OSError, tarfile.TarError, zlib.error) as exc:
        raise _damaged(archive, exc) from None


def _damaged(archive: str, exc: BaseException) -> ConfigError:
    why = str(exc) or type(exc).__name__
    return ConfigError(
        f"{archive} is truncated or damaged ({why}): it cannot be read to its end; check the "
        "copy (its size against the original) or take another snapshot"
    )


def _lock_holder(directory: Path) -> str | None:
    try:
        return (directory / "LOCK").read_text(errors="replace").strip() or None
    except OSError:
        return None


def _private(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o600
    return info


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ["read_manifest", "restore_snapshot", "save_snapshot"]
