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

Writes are off the push path (review24 F3): the client hands each change to a
:class:`DiskWriter`, whose own thread writes the latest list of each service (or config)
that waits, so a burst of N changes costs the listeners nothing, and N saves of one
service cost one.  A client's ``close()`` flushes it.  A directory that cannot be written
is logged once per kind (services, configs) per ``LOG_INTERVAL``, with a count of the
saves that failed since (review24 F7).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import xxhash

from meshreg.client.configs import ConfigInfo, config_info_from_map
from meshreg.configcenter.model import ConfigKey
from meshreg.log_limiter import LogLimiter
from meshreg.model import Instance, ServiceKey
from meshreg.wire.results import check_instance

log = logging.getLogger("meshreg.client")

FORMAT = 1
MAX_FILE_BYTES = 64 * 1024 * 1024  # bytes; a larger file is not a cache file we wrote
CONFIG_DIR = "+configs"  # configs' subdirectory ('+' is in no name)
MAX_FILE_NAME = 255  # bytes (NAME_MAX on Linux and most file systems)
LONG_NAME_KEPT = 200  # bytes of a name too long for a file name kept in its file's name
# services and configs whose latest version waits to be written; beyond, the one that
# waited longest is dropped (counted: ``DiskWriter.dropped``); one slot per name
MAX_PENDING_SAVES = 100_000


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
        self._limiter = LogLimiter(log)  # write failures: once per kind per LOG_INTERVAL

    def path(self, key: ServiceKey) -> Path:
        for part in key:
            if part in (".", "..") or "/" in part:
                raise ValueError(f"unsafe name in {key}")
        return self.directory / key.namespace / key.group / _file_name(key.service)

    def save(self, key: ServiceKey, instances: list[Instance]) -> None:
        """Write the list atomically; errors are logged, never raised (a cache is optional).
        An empty list removes the file (and directories left empty): a consumer reading
        churning names kept one file per service it ever read, for good (review39 F2)."""
        try:
            if not instances:
                self._remove(self.path(key))
                return
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
            self._limiter.warning(
                ("write", "service"),
                time.monotonic(),
                "could not write the disk cache for %s in %s: %s",
                key,
                self.directory,
                exc,
            )

    def _remove(self, target: Path) -> None:
        """Unlink a copy, then its directories up to the cache's own while they are empty
        (one per namespace and group once read); raises OSError as the writes do."""
        target.unlink(missing_ok=True)
        parent = target.parent
        while parent != self.directory and self.directory in parent.parents:
            try:
                parent.rmdir()  # only if empty (another client may have written since)
            except OSError:
                return
            parent = parent.parent

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
                self._remove(target)
                return
            body = {"format": FORMAT, "saved_at": time.time(), "entry": entry.to_json()}
            body["entry"].pop("from_cache", None)
            host = _host_selected(entry, self.labels)
            if host is not None:
                body["host_selected"] = host
            write_json_atomic(target, body)
        except (OSError, ValueError) as exc:
            self._limiter.warning(
                ("write", "config"),
                time.monotonic(),
                "could not write the disk cache for config %s in %s: %s",
                key,
                self.directory,
                exc,
            )

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


class DiskWriter:
    """Writes a :class:`DiskCache` on its own thread (module docstring): the latest
    version of each service or config waiting, oldest waiting first."""

    def __init__(self, cache: DiskCache) -> None:
        self.cache = cache
        self.dropped = 0  # saves dropped because MAX_PENDING_SAVES were waiting
        self._pending: dict[tuple[str, Hashable], Callable[[], None]] = {}  # ordered
        self._cond = threading.Condition()
        self._busy: tuple[str, Hashable] | None = None  # the slot being written
        self._stopped = False
        self._thread: threading.Thread | None = None

    def save(self, key: ServiceKey, instances: list[Instance]) -> None:
        self._put(("service", key), lambda: self.cache.save(key, instances))

    def save_config(self, key: ConfigKey, entry: ConfigInfo | None) -> None:
        self._put(("config", key), lambda: self.cache.save_config(key, entry))

    def _put(self, slot: tuple[str, Hashable], job: Callable[[], None]) -> None:
        with self._cond:
            if self._stopped:
                return  # closed: nothing is written after the flush
            if slot not in self._pending and len(self._pending) >= MAX_PENDING_SAVES:
                del self._pending[next(iter(self._pending))]
                self.dropped += 1
            self._pending[slot] = job  # a newer version replaces the one waiting, in place
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="meshreg-client-disk", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopped:
                    self._cond.wait()
                if not self._pending:
                    return  # stopped, and everything written
                slot = next(iter(self._pending))
                job = self._pending.pop(slot)
                self._busy = slot
            try:
                job()  # logs its own errors (rate-limited), never raises them
            except Exception:
                log.exception("meshreg client: disk cache write failed")
            finally:
                with self._cond:
                    self._busy = None
                    self._cond.notify_all()

    def settle_config(self, key: ConfigKey, timeout: float) -> bool:
        """Wait (``timeout`` s at most) until the version of ``key`` waiting (if any) is
        written; the writer goes on.  False: time ran out."""
        slot = ("config", key)
        deadline = time.monotonic() + timeout
        with self._cond:
            while slot in self._pending or self._busy == slot:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def flush(self, timeout: float) -> bool:
        """Write what waits (at most ``timeout`` seconds), then stop; False: time ran out
        (what was left is not written)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
            while self._pending or self._busy is not None:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None:
                    return False
                self._cond.wait(left)
        return True


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
