"""The consumer's disk cache: each service's last known list, one JSON file each.

Files are written atomically (a temporary file in the same directory,
fsync, then ``os.replace``), so a crash mid-write leaves the old file or the
new one, never a torn one.  A file that cannot be read is ignored (and
logged), never trusted: whatever a file holds (the wrong types, nesting deep
enough to exhaust the parser, megabytes of it) is treated as no file at all.
Layout: ``<dir>/<namespace>/<group>/<service>.json``, and configs (the last version
read or pushed) in ``<dir>/+configs/<namespace>/<group>/<data_id>.json``;
names are restricted to ``[0-9A-Za-z@.:_-]`` by the protocol, so they are
safe path components.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import xxhash

from meshreg.client.configs import ConfigInfo, config_info_from_map
from meshreg.configcenter.model import ConfigKey
from meshreg.model import Instance, ServiceKey
from meshreg.wire.results import check_instance

log = logging.getLogger("meshreg.client")

FORMAT = 1
MAX_FILE_BYTES = 64 * 1024 * 1024  # bytes; a larger file is not a cache file we wrote
CONFIG_DIR = "+configs"  # configs' subdirectory ('+' is in no name)
MAX_FILE_NAME = 255  # bytes (NAME_MAX on Linux and most file systems)
LONG_NAME_KEPT = 200  # bytes of a name too long for a file name kept in its file's name


def write_json_atomic(target: Path, body: Any) -> None:
    """``body`` as JSON in ``target``: a temporary file in the same directory, fsync, then
    ``os.replace`` (a crash leaves the old file or the new one, never a torn one)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(body, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_json(path: Path) -> Any:
    """A JSON file of at most MAX_FILE_BYTES (FileNotFoundError when absent)."""
    with open(path, encoding="utf-8") as fh:
        text = fh.read(MAX_FILE_BYTES + 1)
    if len(text) > MAX_FILE_BYTES:
        raise ValueError(f"larger than {MAX_FILE_BYTES} bytes")
    return json.loads(text)


class DiskCache:
    """``labels``: the labels of the client reading and writing it: a config's disk copy
    is served by them, whichever client saved it (``load_config``)."""

    def __init__(
        self, directory: str | os.PathLike[str], labels: dict[str, str] | None = None
    ) -> None:
        self.directory = Path(directory)
        self.labels = dict(labels or {})

    def path(self, key: ServiceKey) -> Path:
        for part in key:
            if part in (".", "..") or "/" in part:
                raise ValueError(f"unsafe name in {key}")
        return self.directory / key.namespace / key.group / _file_name(key.service)

    def save(self, key: ServiceKey, instances: list[Instance]) -> None:
        """Write the list atomically; errors are logged, never raised (a cache is optional)."""
        try:
            body = {
                "format": FORMAT,
                "namespace": key.namespace,
                "group": key.group,
                "service": key.service,
                "saved_at": time.time(),
                "instances": [i.to_wire() for i in instances],
            }
            write_json_atomic(self.path(key), body)
        except (OSError, ValueError) as exc:
            log.warning("could not write the disk cache for %s in %s: %s", key, self.directory, exc)

    def load(self, key: ServiceKey) -> tuple[list[Instance], float] | None:
        """(instances, saved_at) from disk, or None when there is no usable file."""
        path: Path | str = self.directory
        try:
            path = self.path(key)
            body: Any = read_json(path)
            if not isinstance(body, dict):
                raise ValueError("not a JSON object")
            if body.get("format") != FORMAT or tuple(
                body.get(k) for k in ("namespace", "group", "service")
            ) != tuple(key):
                raise ValueError("not a cache file for this service")
            saved = body.get("instances")
            if not isinstance(saved, list):
                raise ValueError("'instances' is not a list")
            instances = [Instance.from_wire(check_instance(d)) for d in saved]
            saved_at = body.get("saved_at")
            if type(saved_at) not in (int, float):
                raise ValueError("'saved_at' is not a number")
            return instances, float(saved_at)
        except FileNotFoundError:
            return None
        except Exception as exc:  # OSError, ValueError, RecursionError, RemoteProtocolError...
            # a cache is optional: nothing a file holds may reach the caller
            log.warning(
                "ignoring the disk cache file %s for %s (treated as absent): %s: %s",
                path,
                key,
                type(exc).__name__,
                exc,
            )
            return None

    # -- configs (docs/CONFIG.md, "Client and CLI") ---------------------------------------------
    def config_path(self, key: ConfigKey) -> Path:
        """``<dir>/+configs/<namespace>/<group>/<data_id>.json`` ('+' is in no name: no
        service's file can be there)."""
        for part in key:
            if part in (".", "..") or "/" in part or not part:
                raise ValueError(f"unsafe name in {key}")
        return self.directory / CONFIG_DIR / key.namespace / key.group / _file_name(key.data_id)

    def save_config(self, key: ConfigKey, entry: ConfigInfo | None) -> None:
        """Keep a config's version atomically (None: the data id was deleted: remove its
        copy); errors are logged, never raised."""
        try:
            target = self.config_path(key)
            if entry is None:
                target.unlink(missing_ok=True)
                return
            body = {"format": FORMAT, "saved_at": time.time(), "entry": entry.to_json()}
            body["entry"].pop("from_cache", None)
            host = _host_selected(entry, self.labels)
            if host is not None:
                body["host_selected"] = host
            write_json_atomic(target, body)
        except (OSError, ValueError) as exc:
            log.warning("could not write the disk cache for config %s in %s: %s", key,
                        self.directory, exc)  # fmt: skip

    def load_config(self, key: ConfigKey) -> ConfigInfo | None:
        """The disk copy of a config (marked ``from_cache``) as this client is served it
        (``ConfigInfo.served_to``: the client that saved it may have had other labels), or
        None when there is no usable file (a file that cannot be read is logged and
        ignored)."""
        path: Path | str = self.directory
        try:
            path = self.config_path(key)
            body: Any = read_json(path)
            if not isinstance(body, dict) or body.get("format") != FORMAT:
                raise ValueError("not a config cache file")
            entry = config_info_from_map(body.get("entry"), "the saved entry")
            if entry.key != key:
                raise ValueError("not a cache file for this data id")
            host = body.get("host_selected")
            served = entry.served_to(self.labels, host if type(host) is bool else None)
            if served is None:
                raise ValueError(
                    "saved by a client served the gray version, without the main one (an "
                    "older node or client), and this client's labels do not select the gray "
                    "version"
                )
            return dataclasses.replace(served, from_cache=True)
        except FileNotFoundError:
            return None
        except Exception as exc:  # nothing a file holds may reach the caller
            log.warning(
                "ignoring the disk cache file %s for config %s (treated as absent): %s: %s",
                path,
                key,
                type(exc).__name__,
                exc,
            )
            return None


def _host_selected(entry: ConfigInfo, labels: dict[str, str]) -> bool | None:
    """Whether the node serves this host the gray version by its address (the rule names
    hosts): as the node said (``gray_host``); from a node that did not say, True if
    served it and ``labels`` do not select it, False if not served it, None when it
    cannot be told (the labels selected it too: review18 F4)."""
    gray = entry.gray
    if gray is None or not gray.clients:
        return None
    if entry.gray_host is not None:
        return entry.gray_host
    if not entry.gray_served:
        return False
    return None if gray.selects_labels(labels) else True


def _file_name(name: str) -> str:
    """``<name>.json``; a name too long for a file name (names are up to 256 characters,
    file names up to 255 bytes: review17 F10) is cut, with a hash of the whole name
    after it (the file names its service or data id inside: a load checks it)."""
    whole = f"{name}.json"
    if len(whole.encode()) <= MAX_FILE_NAME:
        return whole
    digest = xxhash.xxh64_hexdigest(name.encode())
    cut = name.encode()[:LONG_NAME_KEPT].decode(errors="ignore")
    return f"{cut}~{digest}.json"
