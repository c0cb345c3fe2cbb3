"""Export and import of a namespace's configs: a zip of one file per data id plus metadata.

Format (docs/CONFIG.md, "Client and CLI"), a zip file (stdlib ``zipfile``, deflated):

* ``meshreg-configs.json``: ``{"format": "meshreg-configs", "version": 1, "namespace",
  "exported_at", "items": [{"group", "data_id", "file", "type", "description", "tags",
  "revision", "md5", "modified"}]}`` (``revision``, ``md5`` and ``modified`` are for
  information: an import makes new revisions);
* ``configs/<group>/<data_id>``: the content, UTF-8, as it is.

A file under ``configs/`` that the metadata does not list is imported too, as type
``text`` (an archive made by hand).  Gray versions, tombstones and history are not
exported.  An archive is untrusted input: every name, type, tag and content is checked
with the node's rules, sizes are bounded before anything is read, and a bad archive is
refused whole (:class:`ArchiveError` naming the file and what is wrong) before anything
is written.
"""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from meshreg.configcenter.model import (
    DEFAULT_MAX_CONFIGS,
    HARD_MAX_CONTENT_BYTES,
    MAX_DATA_ID_LEN,
    MAX_GROUP_LEN,
    ConfigRejected,
    check_config_name,
    check_content,
    check_description,
    check_tags,
    check_type,
)
from meshreg.errors import ConfigError, ConflictError, MeshregError

if TYPE_CHECKING:
    from meshreg.client.client import Client

METADATA = "meshreg-configs.json"
FORMAT = "meshreg-configs"
VERSION = 1
CONTENT_DIR = "configs/"
MAX_METADATA_BYTES = 64 * 1024 * 1024  # bytes of metadata JSON
MAX_ITEMS = DEFAULT_MAX_CONFIGS  # data ids in one archive (a node's default cap)
MAX_ARCHIVE_ENTRIES = MAX_ITEMS + 1  # zip members
ON_CONFLICT = ("abort", "skip", "overwrite")


class ArchiveError(ConfigError):
    """The archive cannot be imported (nothing was written); the message says why."""


@dataclass(frozen=True)
class ArchiveItem:
    group: str
    data_id: str
    content: str
    type: str = "text"
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class ImportReport:
    created: list[tuple[str, str]] = field(default_factory=list)
    overwritten: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[tuple[str, str], str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        def names(keys: list[tuple[str, str]]) -> list[str]:
            return [f"{g}/{d}" for g, d in keys]

        return {
            "created": names(self.created),
            "overwritten": names(self.overwritten),
            "skipped": names(self.skipped),
            "failed": [{"config": f"{g}/{d}", "error": e} for (g, d), e in self.failed],
        }


# -- export ---------------------------------------------------------------------------------------
def export_namespace(client: Client, out: IO[bytes], group: str | None = None) -> int:
    """Write the client's namespace (``group``: that group alone) to ``out`` as an archive;
    returns the number of data ids written."""
    namespace = client.namespace
    listed = client.config_list(namespace=namespace, group=group, all_groups=group is None)
    meta: list[dict[str, Any]] = []
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for item in listed:
            info = client.config_get(item.data_id, group=item.group, namespace=namespace)
            if info is None:
                continue  # deleted since it was listed
            name = f"{CONTENT_DIR}{info.group}/{info.data_id}"
            zf.writestr(name, info.content.encode("utf-8"))
            meta.append(
                {
                    "group": info.group,
                    "data_id": info.data_id,
                    "file": name,
                    "type": info.type,
                    "description": info.description,
                    "tags": dict(info.tags),
                    "revision": info.revision,
                    "md5": info.md5,
                    "modified": info.modified,
                }
            )
        body = {
            "format": FORMAT,
            "version": VERSION,
            "namespace": namespace,
            "exported_at": time.time(),
            "items": meta,
        }
        zf.writestr(METADATA, json.dumps(body, indent=1, sort_keys=True))
    return len(meta)


# -- reading an archive ----------------------------------------------------------------------------
def read_archive(source: str | os.PathLike[str] | IO[bytes]) -> list[ArchiveItem]:
    """The archive's configs, every one checked; ArchiveError if anything is wrong."""
    where = os.fspath(source) if isinstance(source, str | os.PathLike) else "the archive"
    try:
        with zipfile.ZipFile(source) as zf:
            return _read(zf, where)
    except zipfile.BadZipFile as exc:
        raise ArchiveError(f"{where} is not a zip archive ({exc})") from None
    except OSError as exc:
        raise ArchiveError(f"cannot read {where}: {exc}") from None


def _read(zf: zipfile.ZipFile, where: str) -> list[ArchiveItem]:
    infos = zf.infolist()
    if len(infos) > MAX_ARCHIVE_ENTRIES:
        raise ArchiveError(f"{where} has {len(infos)} files; at most {MAX_ARCHIVE_ENTRIES}")
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
        if body.get("version") != VERSION:
            raise ArchiveError(
                f"{where}: format version {body.get('version')!r}; this meshreg reads {VERSION}"
            )
        items = body.get("items")
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ArchiveError(f"{where}: {METADATA} 'items' must be a list of objects")
        listed = items
    out: list[ArchiveItem] = []
    seen: set[tuple[str, str]] = set()
    used: set[str] = set()
    for n, meta in enumerate(listed):
        what = f"{where}: {METADATA} items[{n}]"
        group, data_id = _names(meta.get("group"), meta.get("data_id"), what)
        name = meta.get("file", f"{CONTENT_DIR}{group}/{data_id}")
        info = by_name.get(name) if isinstance(name, str) else None
        if info is None:
            raise ArchiveError(f"{what}: its file {name!r} is not in the archive")
        used.add(info.filename)
        out.append(_item(zf, info, group, data_id, meta, what))
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
    client: Client, items: Iterable[ArchiveItem], on_conflict: str = "abort"
) -> ImportReport:
    """Publish ``items`` into the client's namespace.

    ``on_conflict``, for a data id that exists already: ``abort`` (the default) writes
    nothing at all if any does (ConflictError listing them), ``skip`` leaves it,
    ``overwrite`` publishes over it (compare-and-set on the revision read, so a change
    made meanwhile is reported, not overwritten).  A new data id is published with
    ``if_revision=0``.  Failures of single data ids are in the report's ``failed``.
    """
    if on_conflict not in ON_CONFLICT:
        raise ConfigError(f"on_conflict must be one of {', '.join(ON_CONFLICT)}")
    items = list(items)
    namespace = client.namespace
    existing = {
        (i.group, i.data_id): i.revision
        for i in client.config_list(namespace=namespace, all_groups=True)
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
    for item in items:
        ident = (item.group, item.data_id)
        current = existing.get(ident)
        if current is not None and on_conflict == "skip":
            report.skipped.append(ident)
            continue
        try:
            client.config_publish(
                item.data_id,
                item.content,
                type=item.type,
                if_revision=0 if current is None else current,
                desc=item.description or None,
                tags=item.tags or None,
                group=item.group,
                namespace=namespace,
            )
        except MeshregError as exc:
            report.failed.append((ident, str(exc)))
            continue
        (report.created if current is None else report.overwritten).append(ident)
    return report


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
