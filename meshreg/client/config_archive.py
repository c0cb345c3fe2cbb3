"""Export and import of a namespace's configs: a zip of files plus metadata.

Format (docs/CONFIG.md, "The export archive"), a zip file (stdlib ``zipfile``, deflated):

* ``meshreg-configs.json``: ``{"format": "meshreg-configs", "version": 3, "namespace",
  "exported_at", "items": [{"group", "data_id", "file", "type", "description", "tags",
  "revision", "md5", "modified", "gray" (only with a gray version: "file", "type", "md5",
  "labels", "clients"), "history" (newest first: "revision", "change", "deleted",
  "type", "md5", "modified", "modified_by", "description", "tags", "origin", "file" and
  "gray" as above)}]}`` (``md5`` and ``modified`` are for information; ``revision``, the
  item's and each history version's, is the **floor** of the revision its import makes:
  ``revision_floor`` on the write, so a data id rebuilt from an archive goes on from where
  the source was and no running client's revision floor hides it); a deleted data id
  whose tombstone is kept is an item with
  ``"deleted": true``, no ``file`` and its history (version 3);
* ``configs/<group>/<data_id>``: the main content, UTF-8, as it is;
* ``gray/<group>/<data_id>``: the gray version's content;
* ``history/<group>/<data_id>/<n>`` (and ``<n>.gray``): the n-th kept version's content
  (0: the newest).

Version 1 (no gray, no history) and 2 (no tombstones) archives are read too.  A file
under ``configs/`` that the metadata does not list is imported too, as type ``text`` (an
archive made by hand).  An archive is untrusted input: every name, type, tag, gray rule
and content imported is checked with the node's rules, the history's shape is checked
and its files must be there (their contents are read and checked when the history is
imported), sizes are bounded before anything is read, and a bad archive is refused whole
(:class:`ArchiveError` naming the file and what is wrong) before anything is written.

Import (``import_items``) optionally replays each data id's archived history first, as
new revisions, oldest first (``history=True``, docs/CONFIG.md "Import"), one round per
step of history with every data id's step in flight; then it writes the main versions
(or deletes, for tombstones) several at a time (``IMPORT_WINDOW`` in flight: there is no
batch config write on the wire, so the writes are pipelined), then the gray versions
(compare-and-set on the revision each main write made).
"""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import IO, TYPE_CHECKING, Any

from meshreg.client.defaults import DEFAULT_EXPORT_HISTORY as DEFAULT_EXPORT_HISTORY
from meshreg.client.defaults import MAX_EXPORT_HISTORY as MAX_EXPORT_HISTORY
from meshreg.client.defaults import ON_CONFLICT as ON_CONFLICT
from meshreg.configcenter.model import (
    DEFAULT_MAX_CONFIGS,
    HARD_MAX_CONTENT_BYTES,
    MAX_DATA_ID_LEN,
    MAX_GROUP_LEN,
    MAX_HISTORY_PAGE,
    MAX_REVISION_FLOOR,
    Change,
    ConfigKey,
    ConfigRejected,
    check_config_name,
    check_content,
    check_description,
    check_gray_rule,
    check_tags,
    check_type,
)
from meshreg.errors import (
    ConfigError,
    ConflictError,
    ErrorCode,
    NotFoundError,
    OutcomeUnknownError,
    PermissionDeniedError,
    ServerError,
)
from meshreg.wire.config_messages import MAX_REVISION

if TYPE_CHECKING:
    from meshreg.client.client import Client
    from meshreg.client.configs import ConfigInfo, GrayInfo

METADATA = "meshreg-configs.json"
FORMAT = "meshreg-configs"
VERSION = 3  # 2: gray versions and history; 3: tombstones; 1 and 2 are read too
VERSIONS_READ = (1, 2, 3)
CONTENT_DIR = "configs/"
GRAY_DIR = "gray/"
HISTORY_DIR = "history/"
MAX_METADATA_BYTES = 256 * 1024 * 1024  # bytes of metadata JSON (history included)
MAX_ITEMS = DEFAULT_MAX_CONFIGS  # data ids in one archive (a node's default cap)
MAX_HISTORY_ITEMS = 1_000_000  # history versions listed in one archive, all data ids
MAX_ARCHIVE_ENTRIES = 2 * MAX_ITEMS + 2 * MAX_HISTORY_ITEMS + 1  # zip members
MAX_ARCHIVE_BYTES = 1024 * 1024 * 1024  # bytes once inflated, every member (read whole)
IMPORT_WINDOW = 64  # config calls in flight at once during an export or an import


class ArchiveError(ConfigError):
    """The archive cannot be imported (nothing was written); the message says why."""


@dataclass(frozen=True)
class ArchiveGray:
    """An archived gray version: its content, type and rule."""

    content: str
    type: str
    labels: dict[str, str] = field(default_factory=dict)
    clients: tuple[str, ...] = ()


@dataclass(frozen=True)
class ArchiveVersion:
    """A past version of a data id in the archive (its main state; read to replay it)."""

    revision: int
    content: str
    type: str
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    deleted: bool = False
    gray: ArchiveGray | None = None  # its gray version then (replayed: import --history)

    def state(self) -> tuple[Any, ...]:
        if self.deleted:
            return (True,)
        return (False, self.content, self.type, self.description, sorted(self.tags.items()))


@dataclass(frozen=True)
class ReplayStep:
    """One write of an ``import --history`` replay: ``op`` (publish, delete, gray,
    gray_drop, promote) to reach ``version``'s state, making at least revision ``floor``."""

    op: str
    version: ArchiveVersion
    floor: int
    current: bool = False  # a write of the current version (the last steps), not history


@dataclass(frozen=True)
class ArchiveItem:
    group: str
    data_id: str
    content: str
    type: str = "text"
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    gray: ArchiveGray | None = None
    history: int = 0  # versions listed in the archive's history (the current one included)
    deleted: bool = False  # a tombstone: the data id was deleted at the source
    past: tuple[ArchiveVersion, ...] = ()  # read_archive(history=True): newest first, one
    # per revision (the winner), the current version included
    revision: int = 0  # its revision at the source: the import writes at least this one
    # (0: unknown, a hand-made archive or file: the next revision, as before)

    def state(self) -> tuple[Any, ...]:
        if self.deleted:
            return (True,)
        return (False, self.content, self.type, self.description, sorted(self.tags.items()))


@dataclass
class ImportReport:
    created: list[tuple[str, str]] = field(default_factory=list)
    overwritten: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[tuple[str, str], str]] = field(default_factory=list)
    gray: list[tuple[str, str]] = field(default_factory=list)  # gray versions written
    deleted: list[tuple[str, str]] = field(default_factory=list)  # tombstones written
    absent: list[tuple[str, str]] = field(default_factory=list)  # tombstones, absent here
    history: int = 0  # past versions replayed as revisions (import --history)
    # written below their archived revision: a node that ignores ``revision_floor`` (older
    # than this client) made the revision; clients that saw the source's may not see it
    below: list[tuple[str, str]] = field(default_factory=list)
    # of ``failed``: those whose last write got no answer (it may have been applied)
    unknown: list[tuple[str, str]] = field(default_factory=list)

    def fail(self, ident: tuple[str, str], why: str, error: BaseException | None = None) -> None:
        """``ident`` was not imported (``why``); ``error``: the write's, if one was made."""
        self.failed.append((ident, why))
        unknown = isinstance(error, OutcomeUnknownError) or (
            isinstance(error, ServerError)  # a last refusal after an attempt without answer
            and error.code == ErrorCode.UNAVAILABLE
            and not error.unwritten
        )
        if unknown and ident not in self.unknown:
            self.unknown.append(ident)

    def to_json(self) -> dict[str, Any]:
        def names(keys: list[tuple[str, str]]) -> list[str]:
            return [f"{g}/{d}" for g, d in keys]

        return {
            "created": names(self.created),
            "overwritten": names(self.overwritten),
            "skipped": names(self.skipped),
            "failed": [
                {"config": f"{g}/{d}", "error": e, "outcome_unknown": (g, d) in self.unknown}
                for (g, d), e in self.failed
            ],
            "gray": names(self.gray),
            "deleted": names(self.deleted),
            "absent": names(self.absent),
            "history": self.history,
            "below_archived_revision": names(self.below),
        }


# -- export ---------------------------------------------------------------------------------------
def export_namespace(
    client: Client,
    out: IO[bytes],
    group: str | None = None,
    history: int = DEFAULT_EXPORT_HISTORY,
) -> int:
    """Write the client's namespace (``group``: that group alone) to ``out`` as an archive,
    with each data id's gray version and its last ``history`` past versions (0: none; at
    most ``MAX_EXPORT_HISTORY``); returns the number of data ids written.

    One ``config_history`` page per data id (unresolved: the main content and the gray
    version as stored, whatever this client's labels), ``IMPORT_WINDOW`` in flight."""
    if not 0 <= history <= MAX_EXPORT_HISTORY:
        raise ConfigError(f"history must be 0..{MAX_EXPORT_HISTORY} versions per data id")
    namespace = client.namespace
    listed = client.config_list(namespace=namespace, group=group, all_groups=group is None,
                                deleted=True)  # fmt: skip
    calls = [
        ("config_history", ConfigKey(namespace, i.group, i.data_id),
         {"namespace": namespace, "group": i.group, "data_id": i.data_id,
          "page_size": history + 1})
        for i in listed
    ]  # fmt: skip
    meta: list[dict[str, Any]] = []
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for start in range(0, len(calls), IMPORT_WINDOW * 8):  # bounded memory per round
            pages = client._config_many(calls[start : start + IMPORT_WINDOW * 8], IMPORT_WINDOW)
            for page in pages:
                if isinstance(page, BaseException):
                    raise page
                versions: list[ConfigInfo] = list(page.items)
                if not versions:
                    continue  # its tombstone was purged since it was listed
                meta.append(_export_item(zf, versions[0], versions[1 : history + 1]))
        body = {
            "format": FORMAT,
            "version": VERSION,
            "namespace": namespace,
            "exported_at": time.time(),
            "items": meta,
        }
        zf.writestr(METADATA, json.dumps(body, indent=1, sort_keys=True))
    return len(meta)


def _export_item(zf: zipfile.ZipFile, info: ConfigInfo, past: list[ConfigInfo]) -> dict[str, Any]:
    where = f"{info.group}/{info.data_id}"
    name = f"{CONTENT_DIR}{where}"
    item: dict[str, Any] = {
        "group": info.group,
        "data_id": info.data_id,
        "revision": info.revision,
        "modified": info.modified,
    }
    if info.deleted:  # a tombstone: no content file (an old reader refuses version 3)
        item["deleted"] = True
    else:
        zf.writestr(name, info.content.encode("utf-8"))
        item.update(file=name, type=info.type, description=info.description,
                    tags=dict(info.tags), md5=info.md5)  # fmt: skip
    if info.gray is not None and not info.deleted:
        item["gray"] = _export_gray(zf, info.gray, f"{GRAY_DIR}{where}")
    versions = []
    for n, v in enumerate([info, *past]):
        vname = f"{HISTORY_DIR}{where}/{n}"
        zf.writestr(vname, v.content.encode("utf-8"))
        version: dict[str, Any] = {
            "revision": v.revision, "change": v.change, "deleted": v.deleted, "type": v.type,
            "md5": v.md5, "modified": v.modified, "modified_by": v.modified_by,
            "description": v.description, "tags": dict(v.tags), "origin": v.origin,
            "file": vname,
        }  # fmt: skip
        if v.gray is not None:
            version["gray"] = _export_gray(zf, v.gray, f"{vname}.gray")
        versions.append(version)
    item["history"] = versions
    return item


def _export_gray(zf: zipfile.ZipFile, gray: GrayInfo, name: str) -> dict[str, Any]:
    zf.writestr(name, gray.content.encode("utf-8"))
    return {"file": name, "type": gray.type, "md5": gray.md5, "labels": dict(gray.labels),
            "clients": list(gray.clients)}  # fmt: skip


# -- reading an archive ----------------------------------------------------------------------------
def read_archive(
    source: str | os.PathLike[str] | IO[bytes], history: bool = False
) -> list[ArchiveItem]:
    """The archive's configs, every one checked; ArchiveError if anything is wrong.
    ``history``: read the past versions' contents too (``ArchiveItem.past``, to replay)."""
    where = os.fspath(source) if isinstance(source, str | os.PathLike) else "the archive"
    try:
        with zipfile.ZipFile(source) as zf:
            return _read(zf, where, history)
    except zipfile.BadZipFile as exc:
        raise ArchiveError(f"{where} is not a zip archive ({exc})") from None
    except OSError as exc:
        raise ArchiveError(f"cannot read {where}: {exc}") from None


def _read(zf: zipfile.ZipFile, where: str, with_history: bool = False) -> list[ArchiveItem]:
    infos = zf.infolist()
    if len(infos) > MAX_ARCHIVE_ENTRIES:
        raise ArchiveError(f"{where} has {len(infos)} files; at most {MAX_ARCHIVE_ENTRIES}")
    # every member is read whole before anything is written: bound their sum up front by
    # the sizes the archive declares (a read never passes a member's declared size), or
    # a few MB of zip inflate to gigabytes in this process (review14a F5)
    declared = sum(i.file_size for i in infos)
    if declared > MAX_ARCHIVE_BYTES:
        raise ArchiveError(
            f"{where} holds {declared} bytes once inflated; at most {MAX_ARCHIVE_BYTES} "
            "(split the export by group: meshreg config export -g GROUP)"
        )
    by_name = {i.filename: i for i in infos}
    meta_info = by_name.get(METADATA)
    listed: list[dict[str, Any]] = []
    if meta_info is not None:
        raw = _member(zf, meta_info, MAX_METADATA_BYTES, where)
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise ArchiveError(f"{where}: {METADATA} is not JSON ({exc})") from None
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise ArchiveError(f"{where}: {METADATA} is not a meshreg config export")
        version = body.get("version")
        if type(version) is not int or version not in VERSIONS_READ:  # (True == 1)
            raise ArchiveError(
                f"{where}: format version {body.get('version')!r}; this meshreg reads "
                f"{', '.join(map(str, VERSIONS_READ))}"
            )
        items = body.get("items")
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ArchiveError(f"{where}: {METADATA} 'items' must be a list of objects")
        listed = items
    out: list[ArchiveItem] = []
    seen: set[tuple[str, str]] = set()
    used: set[str] = set()
    history_total = 0
    for n, meta in enumerate(listed):
        what = f"{where}: {METADATA} items[{n}]"
        group, data_id = _names(meta.get("group"), meta.get("data_id"), what)
        deleted = meta.get("deleted", False)
        if type(deleted) is not bool:
            raise ArchiveError(f"{what}: 'deleted' must be true or false")
        if deleted:  # a tombstone: no content, no gray version
            item = ArchiveItem(group, data_id, "", deleted=True)
        else:
            name = meta.get("file", f"{CONTENT_DIR}{group}/{data_id}")
            info = _listed_file(by_name, name, what)
            used.add(info.filename)
            item = _item(zf, info, group, data_id, meta, what)
            gray = meta.get("gray")
            if gray is not None:
                item = replace(item, gray=_gray(zf, by_name, gray, f"{what} gray"))
        item = replace(item, revision=_revision(meta.get("revision"), f"{what} 'revision'"))
        past = _history(by_name, meta.get("history"), what)
        history_total += past
        if history_total > MAX_HISTORY_ITEMS:
            raise ArchiveError(f"{where} lists more than {MAX_HISTORY_ITEMS} history versions")
        item = replace(item, history=past)
        if with_history and past:
            item = replace(item, past=_past(zf, by_name, meta["history"], what))
        out.append(item)
    for info in infos:
        if info.filename in used or info.is_dir() or not info.filename.startswith(CONTENT_DIR):
            continue
        parts = info.filename[len(CONTENT_DIR) :].split("/")
        what = f"{where}: {info.filename}"
        if len(parts) != 2:
            raise ArchiveError(f"{what}: expected {CONTENT_DIR}<group>/<data_id>")
        group, data_id = _names(parts[0], parts[1], what)
        out.append(_item(zf, info, group, data_id, {}, what))
    if len(out) > MAX_ITEMS:
        raise ArchiveError(f"{where} holds {len(out)} configs; at most {MAX_ITEMS}")
    for item in out:
        ident = (item.group, item.data_id)
        if ident in seen:
            raise ArchiveError(f"{where} holds {item.group}/{item.data_id} twice")
        seen.add(ident)
    return out


def _names(group: Any, data_id: Any, what: str) -> tuple[str, str]:
    try:
        return (
            check_config_name(group, "group", MAX_GROUP_LEN),
            check_config_name(data_id, "data_id", MAX_DATA_ID_LEN),
        )
    except ConfigRejected as exc:
        raise ArchiveError(f"{what}: {exc.message}") from None


def _item(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, group: str, data_id: str, meta: dict[str, Any],
    what: str,
) -> ArchiveItem:  # fmt: skip
    raw = _member(zf, info, HARD_MAX_CONTENT_BYTES, what)
    try:
        return ArchiveItem(
            group,
            data_id,
            check_content(raw, HARD_MAX_CONTENT_BYTES),
            check_type(meta.get("type")),
            check_description(meta.get("description")),
            dict(check_tags(meta.get("tags"))),
        )
    except ConfigRejected as exc:
        raise ArchiveError(f"{what}: {exc.message}") from None


def _listed_file(by_name: dict[str, zipfile.ZipInfo], name: Any, what: str) -> zipfile.ZipInfo:
    info = by_name.get(name) if isinstance(name, str) else None
    if info is None:
        shown = repr(name)[:300]
        raise ArchiveError(f"{what}: its file {shown} is not in the archive")
    return info


def _gray(
    zf: zipfile.ZipFile, by_name: dict[str, zipfile.ZipInfo], gray: Any, what: str
) -> ArchiveGray:
    """An archived gray version, checked with the node's rules (content, type, rule)."""
    if not isinstance(gray, dict):
        raise ArchiveError(f"{what}: must be an object (file, type, labels, clients)")
    info = _listed_file(by_name, gray.get("file"), what)
    raw = _member(zf, info, HARD_MAX_CONTENT_BYTES, what)
    try:
        # stored: an archive made before hosts-only rules still reads; the import's gray
        # write of a host:port entry is then refused for that item alone (the node's rule)
        labels, clients = gray.get("labels") or None, gray.get("clients") or None
        rule = check_gray_rule(labels, clients, stored=True)
        return ArchiveGray(
            check_content(raw, HARD_MAX_CONTENT_BYTES),
            check_type(gray.get("type")),
            dict(rule.labels),
            tuple(sorted(rule.addresses)),
        )
    except ConfigRejected as exc:
        raise ArchiveError(f"{what}: {exc.message}") from None


def _history(by_name: dict[str, zipfile.ZipInfo], history: Any, what: str) -> int:
    """The number of past versions an item lists, their shape checked and their files
    present (the history is for information: its contents are not read)."""
    if history is None:
        return 0
    if not isinstance(history, list) or len(history) > MAX_HISTORY_PAGE:
        raise ArchiveError(f"{what}: 'history' must be a list of at most {MAX_HISTORY_PAGE}")
    changes = {c.value for c in Change}
    for n, v in enumerate(history):
        at = f"{what} history[{n}]"
        if not isinstance(v, dict):
            raise ArchiveError(f"{at}: must be an object")
        if v.get("revision") is None:
            raise ArchiveError(f"{at}: 'revision' must be an integer >= 1")
        _revision(v.get("revision"), f"{at}: 'revision'")
        if v.get("change") not in changes:
            raise ArchiveError(f"{at}: 'change' must be one of {', '.join(sorted(changes))}")
        _listed_file(by_name, v.get("file"), at)
        if v.get("gray") is not None:
            gray = v["gray"]
            _listed_file(by_name, gray.get("file") if isinstance(gray, dict) else None, at)
    return len(history)


def _revision(value: Any, what: str) -> int:
    """An archived revision (the floor of the revision its import makes): an integer in
    1..``MAX_REVISION_FLOOR``; absent (an archive made by hand): 0, no floor."""
    if value is None:
        return 0
    if type(value) is not int or not 1 <= value <= MAX_REVISION_FLOOR:
        raise ArchiveError(f"{what} must be an integer in 1..{MAX_REVISION_FLOOR}")
    return value


def _past(
    zf: zipfile.ZipFile, by_name: dict[str, zipfile.ZipInfo], history: list[Any], what: str
) -> tuple[ArchiveVersion, ...]:
    """The history's versions (shape checked by ``_history``), their contents read and
    checked with the node's rules; one per revision: the first listed (the winner)."""
    out: list[ArchiveVersion] = []
    seen: set[int] = set()
    for n, v in enumerate(history):
        if v["revision"] in seen:
            continue  # a version that lost its revision (owners racing): not replayed
        seen.add(v["revision"])
        at = f"{what} history[{n}]"
        deleted = v.get("deleted", False)
        if type(deleted) is not bool:
            raise ArchiveError(f"{at}: 'deleted' must be true or false")
        raw = _member(zf, by_name[v["file"]], HARD_MAX_CONTENT_BYTES, at)
        gray = v.get("gray")
        if gray is not None and not deleted:
            gray = _gray(zf, by_name, gray, f"{at} gray")
        try:
            out.append(ArchiveVersion(
                v["revision"], check_content(raw, HARD_MAX_CONTENT_BYTES),
                check_type(v.get("type")), check_description(v.get("description")),
                dict(check_tags(v.get("tags"))), deleted, gray if not deleted else None,
            ))  # fmt: skip
        except ConfigRejected as exc:
            raise ArchiveError(f"{at}: {exc.message}") from None
    return tuple(out)


def _member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, what: str) -> bytes:
    """A member's bytes, refusing more than ``limit`` (the header may lie: read bounded)."""
    if info.file_size > limit:
        raise ArchiveError(f"{what}: {info.filename} is {info.file_size} bytes; at most {limit}")
    with zf.open(info) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ArchiveError(f"{what}: {info.filename} is larger than {limit} bytes")
    return data


# -- import ---------------------------------------------------------------------------------------
def import_items(
    client: Client,
    items: Iterable[ArchiveItem],
    on_conflict: str = "abort",
    history: bool = False,
) -> ImportReport:
    """Publish ``items`` into the client's namespace, gray versions included.

    ``on_conflict``, for a data id that exists already: ``abort`` (the default) writes
    nothing at all if any does (ConflictError listing them), ``skip`` leaves it,
    ``overwrite`` publishes over it (compare-and-set on the revision read, so a change
    made meanwhile is reported, not overwritten).  A new data id is published with
    ``if_revision=0``.  A tombstone (deleted at the source) deletes the data id where it
    exists (a conflict like any other: deleted only with ``overwrite``); absent here,
    its tombstone is written at its archived revision where the data id holds less (a
    delete with ``revision_floor``; nothing visible changes: ``absent``).

    **Revisions.** Each write carries the archived revision as ``revision_floor``: the
    owner makes the next revision or that one, whichever is higher.  A data id absent
    here (or whose tombstone here is older) is written at the revision it had at the
    source, so after a rebuild from an export (disaster recovery) a running client that
    carries the source's revision reads it and hears its changes without a restart; an
    overwritten one gets max(its revision + 1, the archived one): revisions only grow.
    A revision made below the archived one (a node older than this client ignores the
    field) is listed in ``below``.

    ``history`` (items read with ``read_archive(history=True)``): before its current
    version, each data id written gets its archived past versions replayed as new
    revisions, oldest first (a delete for a deleted one; a version whose main state
    equals the one before it, such as a gray step, is not replayed), each a
    compare-and-set on the revision the one before made, one round per step with every
    data id's step in flight.  The history then reads as the source's did, with the
    source's revision numbers where the data id was absent here (each replayed version
    carries its own as ``revision_floor``), new times and author (the archive keeps the
    originals).

    Then the main versions (``IMPORT_WINDOW`` at a time), then each archived gray
    version (compare-and-set on the revision its main write made; an overwritten data id
    whose archive item has no gray version loses its own, so it ends as archived).
    Failures of single data ids are in the report's ``failed`` (a gray write that failed
    after its main one: "gray: ...", a replayed version: "history revision N: ...")."""
    if on_conflict not in ON_CONFLICT:
        raise ConfigError(f"on_conflict must be one of {', '.join(ON_CONFLICT)}")
    items = list(items)
    namespace = client.namespace
    existing = {
        (i.group, i.data_id): i for i in client.config_list(namespace=namespace, all_groups=True)
    }
    clashing = [f"{i.group}/{i.data_id}" for i in items if (i.group, i.data_id) in existing]
    if clashing and on_conflict == "abort":
        shown = ", ".join(clashing[:10]) + (
            f" and {len(clashing) - 10} more" if len(clashing) > 10 else ""
        )
        raise ConflictError(
            11,
            f"import into namespace {namespace!r}: {len(clashing)} config(s) exist already "
            f"({shown}); nothing was written. Use --on-conflict skip or overwrite",
        )
    report = ImportReport()
    todo: list[ArchiveItem] = []
    plans: dict[tuple[str, str], list[ReplayStep]] = {}
    for item in items:
        ident = (item.group, item.data_id)
        plan = _replay_plan(item, existing.get(ident)) if history else []
        if ident in existing and on_conflict == "skip":
            report.skipped.append(ident)
        elif item.deleted and ident not in existing and not plan and not item.revision:
            report.absent.append(ident)  # (with a revision: its tombstone is kept, below)
        else:
            todo.append(item)
            plans[ident] = plan

    def key(item: ArchiveItem) -> ConfigKey:
        return ConfigKey(namespace, item.group, item.data_id)

    def fields(item: ArchiveItem, **more: Any) -> dict[str, Any]:
        base = {"namespace": namespace, "group": item.group, "data_id": item.data_id}
        return {**base, **{k: v for k, v in more.items() if v is not None}}

    def write(item: ArchiveItem, state: ArchiveItem | ArchiveVersion, cas: int, floor: int) -> Any:
        # at least the source's revision (nil: none known): no running client that saw it
        # there is left behind (PROTOCOL.md 2.15 ``revision_floor``)
        if state.deleted:
            return ("config_delete", key(item), fields(item, if_revision=cas,
                                                       revision_floor=floor or None))  # fmt: skip
        return ("config_publish", key(item), fields(
            item, content=state.content, type=state.type, if_revision=cas,
            desc=state.description or None, tags=state.tags or None,
            revision_floor=floor or None, echo=False))  # fmt: skip

    def write_gray(item: ArchiveItem, gray: ArchiveGray | None, cas: int, floor: int) -> Any:
        if gray is None:
            return ("config_gray_drop", key(item),
                    fields(item, if_revision=cas, revision_floor=floor or None))  # fmt: skip
        return ("config_gray", key(item), fields(
            item, content=gray.content, type=gray.type, labels=gray.labels or None,
            clients=list(gray.clients) or None, if_revision=cas,
            revision_floor=floor or None))  # fmt: skip

    def write_step(item: ArchiveItem, step: ReplayStep, cas: int) -> Any:
        if step.op in ("publish", "delete"):
            return write(item, step.version, cas, step.floor)
        if step.op == "promote":
            return ("config_promote", key(item),
                    fields(item, if_revision=cas, revision_floor=step.floor))  # fmt: skip
        return write_gray(item, step.version.gray if step.op == "gray" else None, cas, step.floor)

    # A replayed history whose data id must be deleted (at its end, or on the way) needs a
    # key that may delete (admin): else its publishes were made and its delete refused,
    # and a data id deleted at the source was left live here (review17 F6).  Asked once
    # per group, before anything is written: a delete with a revision no data id holds
    # (refused by the ACL first, else CONFLICT or NOT_FOUND: nothing is written).
    deleting: dict[str, tuple[str, str]] = {}  # group -> a data id of it to ask with
    for item in todo:
        plan = plans[(item.group, item.data_id)]
        if plan and (item.deleted or any(s.op == "delete" for s in plan)):
            deleting.setdefault(item.group, (item.group, item.data_id))
    probes = [("config_delete", ConfigKey(namespace, g, d),
               {"namespace": namespace, "group": g, "data_id": d, "if_revision": MAX_REVISION})
              for g, d in deleting.values()]  # fmt: skip
    asked = client._config_many(probes, IMPORT_WINDOW) if probes else []
    denied = {
        group: result
        for group, result in zip(deleting, asked, strict=True)
        if isinstance(result, PermissionDeniedError)
    }
    if denied:
        keep: list[ArchiveItem] = []
        for item in todo:
            plan = plans[(item.group, item.data_id)]
            why = denied.get(item.group)
            if why is not None and plan and (item.deleted or any(s.op == "delete" for s in plan)):
                report.failed.append(((item.group, item.data_id), (
                    f"its history deletes it, and this key may not delete in group "
                    f"{item.group!r} ({why}); nothing of it was written: import it with a "
                    "key allowed admin there, or without --history")))  # fmt: skip
            else:
                keep.append(item)
        todo = keep

    def kept(ident: tuple[str, str], floor: int, made: int) -> None:
        if made < floor and ident not in report.below:
            report.below.append(ident)

    # where each data id stands: its revision (the CAS of its next write), live or not
    at = {(i.group, i.data_id): existing[(i.group, i.data_id)].revision
          if (i.group, i.data_id) in existing else 0 for i in todo}  # fmt: skip
    live = {ident: ident in existing for ident in at}
    failed: set[tuple[str, str]] = set()
    for n in range(max((len(p) for p in plans.values()), default=0)):
        calls, whose = [], []
        for item in todo:
            ident = (item.group, item.data_id)
            plan = plans[ident]
            if ident in failed or n >= len(plan) or (plan[n].op == "delete" and not live[ident]):
                continue
            calls.append(write_step(item, plan[n], at[ident]))
            whose.append((item, plan[n]))
        for (item, step), result in zip(whose, client._config_many(calls, IMPORT_WINDOW),
                                        strict=True):  # fmt: skip
            ident = (item.group, item.data_id)
            if isinstance(result, BaseException):
                failed.add(ident)
                why = f"history revision {step.version.revision} ({step.op}): {result}"
                report.fail(ident, why, result)
                continue
            live[ident] = step.op != "delete"  # (after a delete, a write's CAS is 0)
            at[ident] = result.revision if live[ident] else 0
            kept(ident, step.floor, result.revision)
            report.history += not step.current

    def gray_after(item: ArchiveItem) -> bool:
        """Whether the item's main version is followed by a gray write (a drop where the
        target holds a gray version and the item none)."""
        current = existing.get((item.group, item.data_id))
        return item.gray is not None or (current is not None and current.gray is not None)

    mains, whose_main = [], []
    tombstones: set[tuple[str, str]] = set()  # deleted at the source, not live here
    grays: list[tuple[ArchiveItem, str, dict[str, Any]]] = []
    for item in todo:
        ident = (item.group, item.data_id)
        if ident in failed:
            continue
        plan = plans[ident]
        if plan and plan[-1].current:  # the replay wrote the current version too
            (report.created if ident not in existing else report.overwritten).append(ident)
            if item.gray is not None:
                report.gray.append(ident)
            continue
        if item.deleted and not live[ident]:
            if not item.revision:
                report.absent.append(ident)  # (its history, replayed, ends deleted already)
                continue
            # its tombstone at the archived revision where this data id holds less: a
            # later create goes on above it (the node answers NOT_FOUND where it holds as
            # much; a node older than revision_floor, always)
            tombstones.add(ident)
        follows = not item.deleted and gray_after(item)
        floor = item.revision - 1 if follows and item.revision > 1 else item.revision
        mains.append(write(item, item, at[ident], floor))
        whose_main.append(item)
    results = client._config_many(mains, IMPORT_WINDOW)
    for item, result in zip(whose_main, results, strict=True):
        ident = (item.group, item.data_id)
        if ident in tombstones:  # nothing visible changes: absent here, as at the source
            if isinstance(result, BaseException) and not isinstance(result, NotFoundError):
                report.fail(ident, f"its tombstone: {result}", result)
            else:
                report.absent.append(ident)
            continue
        if isinstance(result, BaseException):
            report.fail(ident, str(result), result)
            continue
        current = existing.get(ident)
        follows = not item.deleted and gray_after(item)
        kept(ident, item.revision - 1 if follows and item.revision > 1 else item.revision,
             result.revision)  # fmt: skip
        if item.deleted:
            report.deleted.append(ident)
            continue
        (report.created if current is None else report.overwritten).append(ident)
        if follows:
            op, _, args = write_gray(item, item.gray, result.revision, item.revision)
            grays.append((item, op, args))
    done = client._config_many([(op, key(i), f) for i, op, f in grays], IMPORT_WINDOW)
    for (item, op, _), result in zip(grays, done, strict=True):
        ident = (item.group, item.data_id)
        if isinstance(result, BaseException):
            what = "gray" if op == "config_gray" else "dropping its gray version"
            report.fail(ident, f"{what}: {result}", result)
        else:
            if op == "config_gray":
                report.gray.append(ident)
            kept(ident, item.revision, result.revision)
    return report


def _replay_plan(item: ArchiveItem, target: ConfigInfo | None) -> list[ReplayStep]:
    """The writes that replay ``item``'s past versions and then make its current state,
    oldest first, each at its archived revision, starting from what the ``target``
    holds (None: nothing).  A version whose state (main and gray) equals the one before
    is left out; one whose main state changed is a publish (or a delete), one whose gray
    version alone changed a gray write or drop, one whose gray version became the main
    one a promote, so the copy's revisions and states are the source's (review33 F5:
    gray steps were skipped, and the gray write went on top of the current version, one
    revision above the source's).  Main and gray changed at once (the history pruned
    between them, or the target's own gray version to drop): the publish one below, the
    gray write at the revision.  The current version (``current`` steps): the write that
    makes it, or, where its state equals the last replayed one (a rollback to the version
    in force, the same file published again), a publish of it all the same, so the data
    id reaches the source's revision (review34 F1); a deleted one is left to the main
    write (its delete, or its tombstone)."""
    main: tuple[Any, ...] = (True,)  # nothing: like deleted
    gray: ArchiveGray | None = None
    if target is not None and not target.deleted:  # (its contents are not read: they
        main = ("the target's",)  # equal no archived state, nor its gray version any)
        gray = _TARGETS_GRAY if target.gray is not None else None
    plan: list[ReplayStep] = []
    for v in reversed(item.past[1:]):
        plan += _steps_to(v, main, gray)
        main, gray = v.state(), v.gray
    if not plan or item.deleted:
        return plan  # (nothing replayed: the main and gray writes as without --history)
    now = ArchiveVersion(item.revision, item.content, item.type, item.description,
                         dict(item.tags), False, item.gray)  # fmt: skip
    last = _steps_to(now, main, gray) or [ReplayStep("publish", now, item.revision)]
    return plan + [replace(step, current=True) for step in last]


_TARGETS_GRAY = ArchiveGray("", "")  # the target's gray version (not read): equals none


def _steps_to(
    v: ArchiveVersion, main: tuple[Any, ...], gray: ArchiveGray | None
) -> list[ReplayStep]:
    """The writes from a data id holding ``main`` and ``gray`` to version ``v``."""
    r = v.revision
    if v.deleted:
        return [] if main == (True,) else [ReplayStep("delete", v, r)]
    if v.state() == main:
        if v.gray == gray:
            return []
        return [ReplayStep("gray" if v.gray is not None else "gray_drop", v, r)]
    if v.gray == gray:
        return [ReplayStep("publish", v, r)]
    if (
        v.gray is None
        and gray is not None
        and gray is not _TARGETS_GRAY
        and main != (True,)
        and v.state() == (False, gray.content, gray.type, *main[3:])
    ):
        return [ReplayStep("promote", v, r)]
    return [
        ReplayStep("publish", v, r - 1 if r > 1 else r),
        ReplayStep("gray" if v.gray is not None else "gray_drop", v, r),
    ]


def archive_bytes(items: Iterable[ArchiveItem], namespace: str = "public") -> bytes:
    """An archive of ``items`` (tests, and tools that build one by hand)."""
    buf = io.BytesIO()
    meta = []
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for item in items:
            name = f"{CONTENT_DIR}{item.group}/{item.data_id}"
            zf.writestr(name, item.content.encode("utf-8"))
            meta.append({"group": item.group, "data_id": item.data_id, "file": name,
                         "type": item.type, "description": item.description,
                         "tags": dict(item.tags)})  # fmt: skip
        body = {"format": FORMAT, "version": VERSION, "namespace": namespace, "items": meta}
        zf.writestr(METADATA, json.dumps(body))
    return buf.getvalue()
