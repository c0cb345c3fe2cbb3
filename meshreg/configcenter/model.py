"""The configuration center's data model: namespace > group > data id -> versioned content.

A data id's state at one **revision** is a :class:`ConfigEntry`: the main content (UTF-8
text) with its type, md5, description and tags, who changed it and when, whether it is
a tombstone (deleted), and an optional gray release (:class:`GrayRelease`) served to the
clients its rule selects.  Every change of a data id (publish, delete, rollback, gray
publish, promote, gray drop) is a new entry whose revision is the previous one plus one:
revisions only grow, and content that goes back to an earlier value is still a new
revision (the md5 never stands in for a revision).

Entries are values: frozen, compared and merged by :func:`merge_order` (docs/CONFIG.md,
"The merge rule").  Names follow the registry's name rules (``NAME_PATTERN``: the same
alphabet and lengths as services, wire/messages ``check_name``).

This module is sans-IO (no time, os, sqlite or zmq): times are numbers the caller passes.
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from meshreg.errors import ErrorCode, ProtocolError
from meshreg.model import DEFAULT_GROUP, DEFAULT_NAMESPACE

CONFIG_TYPES = ("text", "json", "yaml", "properties", "toml", "xml")
DEFAULT_CONFIG_TYPE = "text"

# The registry's name alphabet and lengths (wire/messages _NAME_RE and wire/limits; a test
# checks that both agree): names become PUB/SUB topics joined by NUL, so ASCII only.
NAME_PATTERN = r"[0-9A-Za-z@.:_\-]+\Z"
_NAME_RE = re.compile(NAME_PATTERN)
MAX_NAMESPACE_LEN = 64  # chars (as a service's namespace)
MAX_GROUP_LEN = 128  # chars (as a service's group)
MAX_DATA_ID_LEN = 256  # chars (as a service name)

# Content caps.  Nacos allows 10 MiB, Consul 512 KB, etcd 1.5 MiB per value: 1 MiB by
# default keeps a publish one round of a few ms on disk and the wire; the operator may raise
# it up to the hard cap, above which one write would stall replication for everyone.
DEFAULT_MAX_CONTENT_BYTES = 1024 * 1024  # bytes of UTF-8
HARD_MAX_CONTENT_BYTES = 10 * 1024 * 1024  # bytes; no configuration goes above it
MAX_DESCRIPTION_LEN = 1024  # chars
MAX_TAGS = 32  # tags per data id
MAX_TAG_KEY_LEN = 64  # chars, name alphabet
MAX_TAG_VALUE_LEN = 256  # chars, printable
MAX_GRAY_LABELS = 32  # label pairs in one gray selector
MAX_GRAY_ADDRESSES = 1024  # client addresses in one gray rule
MAX_LABEL_LEN = 256  # chars per label key or value, printable
MAX_ADDRESS_LEN = 300  # chars per client address (a host: the IP the node sees)
MAX_MODIFIED_BY_LEN = 256  # chars, printable (a key name, a user, a node id)
MAX_PATTERN_LEN = 256  # chars of a list pattern (names plus * and ?)
# A write's request id (docs/PROTOCOL.md 2.15): the client's name for one logical write,
# the same on every re-send, so the owner applies it at most once (ConfigStore.find_request).
MIN_REQUEST_ID_LEN = 16  # chars: ids are meant to be random (the client sends 32 hex digits)
MAX_REQUEST_ID_LEN = 64  # chars
REQUEST_ID_PATTERN = r"[0-9A-Za-z_.:\-]+\Z"
_REQUEST_ID_RE = re.compile(REQUEST_ID_PATTERN)

# The write timing contract (docs/PROTOCOL.md 2.15, "Re-sending a write"), in one place
# (here, not in replication.py, which re-exports it: the client needs it, not replication):
# each layer answers before the one above it gives up, so a client never abandons a node
# that is still working on its write, and hears "outcome unknown" instead (then re-sends
# with the same request id, which is safe).  tests/configcenter/test_config_idempotent.py
# checks the order.
DEFAULT_ACK_TIMEOUT = 2.0  # s; the owner answers a write within this of receiving it
# (catch-up included): not acknowledged by a majority by then: UNAVAILABLE, outcome unknown
# (the registry's peer_request_timeout; an fsync and a LAN round trip take ~10 ms)
FORWARD_TIMEOUT = DEFAULT_ACK_TIMEOUT + 0.2  # s; a node that forwarded a write to its
# owner answers the client within this of receiving it (the owner's answer, or
# UNAVAILABLE: outcome unknown); 0.2 s for the round trip to the owner and its loop turn
CONFIG_WRITE_ATTEMPT = FORWARD_TIMEOUT + 0.3  # s; the client's attempt budget of a write:
# the node's answer is due 0.3 s before it (client round trip and loop turns)
BEHIND_WAIT = 1.0  # s; a node holds a read whose ``min_revision`` is above what it holds
# this long for the version to arrive (runtime/config_plane.PARK_SECONDS), then UNAVAILABLE
CONFIG_BEHIND_ATTEMPT = BEHIND_WAIT + 0.5  # s; the client's attempt budget of such a read:
# above the node's wait, so the node's answer ("this node holds revision R and you have
# seen N") reaches the client instead of a time-out and "no reply"
MAX_REVISION_FLOOR = 2**62  # a write's ``revision_floor`` (import): at most this, so the
# revisions after it still fit in a signed 64-bit integer (2**62 more writes)

# History retention (the defaults): past revisions of a data id are kept while they
# are among its last KEEP_REVISIONS and younger than KEEP_SECONDS; the current entry is never
# pruned.  Bounded: a Nacos user found a 17 GB history table.
DEFAULT_KEEP_REVISIONS = 100  # revisions per data id
DEFAULT_KEEP_SECONDS = 30 * 24 * 3600.0  # s (30 days)
DEFAULT_PRUNE_STEP = 1000  # history entries removed per prune call at most (bounded work)
DEFAULT_MAX_CONFIGS = 100_000  # live data ids per node (deleted ones not counted); a
# create beyond it is refused
DEFAULT_MAX_CONFIGS_PER_NAMESPACE = 10_000  # live data ids per namespace (0: no limit but
# max_configs): one tenant cannot take every slot of the node (review14a/14b F3; Nacos's
# per-tenant capacity)
DEFAULT_MAX_TOMBSTONES = 100_000  # deleted data ids kept per node (each until keep_days);
# beyond: the oldest are purged early (like the registry's [limits] max_tombstones)
HELD_FACTOR = 2  # data ids held (live + deleted) at most: HELD_FACTOR * (max_configs +
# max_tombstones), the memory backstop; a version of a new data id beyond it is refused,
# from a peer too (only a peer with larger limits, or a flood faster than the purge)
# content held per node, every kept version's (each node holds all of it, in memory as
# well as on disk): a write beyond it is refused (review14b; etcd: --quota-backend-bytes)
DEFAULT_MAX_TOTAL_BYTES = 256 * 1024 * 1024
# content held per namespace, every kept version's (0: no limit but max_total_bytes): one
# tenant cannot take the whole of it (review23 F4: 256 publishes of 1 MiB in one namespace,
# then no other namespace could publish 4 bytes; Nacos's per-tenant capacity)
DEFAULT_MAX_BYTES_PER_NAMESPACE = DEFAULT_MAX_TOTAL_BYTES // 4
DEFAULT_LIST_PAGE = 100  # data ids per list page when not asked
MAX_LIST_PAGE = 1000  # data ids per list page at most
DEFAULT_HISTORY_PAGE = 20  # revisions per history page when not asked
MAX_HISTORY_PAGE = 200  # revisions per history page at most


class ConfigRejected(ProtocolError):
    """A config operation was refused; ``code`` goes on the wire, the message names what
    failed.  Nothing was changed."""

    def __init__(
        self, code: ErrorCode, message: str, reason: str = "", revision: int | None = None
    ) -> None:
        super().__init__(message, code)
        self.reason = reason or code.name.lower()
        # NOT_FOUND of a deleted data id: the delete's revision; CONFLICT of a CAS: the
        # current revision (0: the data id does not exist), the if_revision that holds now
        self.revision = revision


def invalid(message: str, reason: str) -> ConfigRejected:
    return ConfigRejected(ErrorCode.INVALID_ARGUMENT, message, reason)


def check_revision_floor(value: Any) -> int:
    """A write's ``revision_floor``: an integer in 0..``MAX_REVISION_FLOOR`` (0: none)."""
    if value is None:
        return 0
    if type(value) is not int or not 0 <= value <= MAX_REVISION_FLOOR:
        raise invalid(
            f"field 'revision_floor' must be an integer in 0..{MAX_REVISION_FLOOR} (the "
            "revision this write makes is at least it; 0: none)",
            "bad_revision",
        )
    return value


class ConfigKey(NamedTuple):
    """Where a config lives: (namespace, group, data id)."""

    namespace: str
    group: str
    data_id: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.group}/{self.data_id}"


def config_key_bytes(key: ConfigKey) -> bytes:
    """The key's bytes in the mapping's own key space: a ``config`` prefix (the registry's
    service keys never start with it: a namespace has no NUL) so a data id and a service of
    the same names hash independently."""
    return b"config\x00" + b"\x00".join(
        (key.namespace.encode(), key.group.encode(), key.data_id.encode())
    )


class Change(str, enum.Enum):
    """What made a revision (shown by history)."""

    PUBLISH = "publish"
    DELETE = "delete"
    ROLLBACK = "rollback"
    GRAY = "gray"
    PROMOTE = "promote"
    GRAY_DROP = "gray_drop"


@dataclass(frozen=True, slots=True)
class GrayRule:
    """Who gets a gray version: clients whose labels include every pair of ``labels``, or
    whose address (the IP of its connection, as the node sees it) is in ``addresses``.  At
    least one must be given.  A new rule names hosts only (``check_gray_rule``); a stored
    one from before that may hold ``host:port`` entries, which match no client."""

    labels: tuple[tuple[str, str], ...] = ()
    addresses: frozenset[str] = frozenset()

    def matches(self, client_labels: Mapping[str, str], client_address: str | None) -> bool:
        if self.labels and all(client_labels.get(k) == v for k, v in self.labels):
            return True
        return self.lists(client_address)

    def lists(self, client_address: str | None) -> bool:
        """Whether ``client_address`` is among the rule's clients, whatever the labels."""
        if not client_address or not self.addresses:
            return False
        return client_address in self.addresses or _host_of(client_address) in self.addresses

    def to_wire(self) -> dict[str, Any]:
        return {"labels": dict(self.labels), "clients": sorted(self.addresses)}


def _host_of(address: str) -> str:
    """``host`` of ``host:port`` / ``[v6]:port``; an address without a port unchanged."""
    if address.startswith("["):
        return address[1:].partition("]")[0]
    if address.count(":") == 1:
        return address.partition(":")[0]
    return address


@dataclass(frozen=True, slots=True)
class GrayRelease:
    """A gray version of a data id's content, served to the clients ``rule`` selects."""

    content: str
    type: str
    md5: str
    rule: GrayRule


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    """One data id at one revision (the current state or a history record).

    ``origin`` is the node that assigned the revision; ``committed`` becomes True when the
    origin saw a majority of the configured members persist it (docs/CONFIG.md).  A
    tombstone (``deleted``) keeps the revision sequence going, so a delete replicates and
    an older copy never resurrects the data id.
    """

    key: ConfigKey
    revision: int
    origin: str
    content: str
    type: str
    md5: str
    modified: float  # s, wall clock of the origin when it assigned the revision
    modified_by: str = ""
    description: str = ""
    tags: tuple[tuple[str, str], ...] = ()
    deleted: bool = False
    change: Change = Change.PUBLISH
    gray: GrayRelease | None = None
    committed: bool = False
    request_id: str = ""  # the id of the client write that made it ('' : none given)

    def as_committed(self) -> ConfigEntry:
        """This version with ``committed`` True (a majority acknowledged it): built
        directly, every field in order (``dataclasses.replace`` looks the fields up on
        each call: 4% of a publish's loop time, made three times per publish)."""
        return ConfigEntry(
            self.key,
            self.revision,
            self.origin,
            self.content,
            self.type,
            self.md5,
            self.modified,
            self.modified_by,
            self.description,
            self.tags,
            self.deleted,
            self.change,
            self.gray,
            True,
            self.request_id,
        )

    @property
    def identity(self) -> tuple[str, str]:
        """What tells two entries of the same revision apart: (origin, md5)."""
        return (self.origin, self.md5)

    def same_version(self, other: ConfigEntry) -> bool:
        """Same revision, written by the same origin with the same content (the committed
        flag aside)."""
        return (
            self.revision == other.revision
            and self.identity == other.identity
            and self.gray == other.gray
            and self.deleted == other.deleted
        )

    def to_wire(self) -> dict[str, Any]:
        """The fields a ``config get --json`` prints (docs/CONFIG.md)."""
        ns, group, data_id = self.key
        out: dict[str, Any] = {
            "namespace": ns,
            "group": group,
            "data_id": data_id,
            "content": self.content,
            "type": self.type,
            "md5": self.md5,
            "revision": self.revision,
            "modified": self.modified,
            "modified_by": self.modified_by,
            "description": self.description,
            "tags": dict(self.tags),
            "deleted": self.deleted,
            "change": self.change.value,
            "origin": self.origin,
        }
        if self.gray is not None:
            out["gray"] = {
                "content": self.gray.content,
                "type": self.gray.type,
                "md5": self.gray.md5,
                **self.gray.rule.to_wire(),
            }
        return out


def merge_order(entry: ConfigEntry) -> tuple[int, bool, str, str, str]:
    """The merge rule's sort key: the highest wins, everywhere, whatever the arrival order.

    (revision, committed, origin, md5, gray md5).  A higher revision always wins; at one
    revision, which two owners can both assign during a membership change, the version a
    majority acknowledged (``committed``) wins - each node acknowledges at most one version
    per revision, so at most one can be committed - and otherwise the larger origin node id,
    then the larger md5 (then the gray md5, so two versions that differ only in their gray
    part still order).  The loser stays in the history.  ``committed`` only ever goes from
    False to True, so merging is a join: every node that holds the same versions picks the
    same winner.
    """
    gray_md5 = entry.gray.md5 if entry.gray is not None else ""
    return (entry.revision, entry.committed, entry.origin, entry.md5, gray_md5)


def content_md5(content: str) -> str:
    """The md5 (hex) of the content's UTF-8 bytes, as Nacos reports it."""
    return hashlib.md5(content.encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True, slots=True)
class ConfigDigest:
    """What anti-entropy compares per data id: (key, revision, md5), plus the origin and
    the committed flag that the merge rule also reads, and a hash of the history kept, so
    histories converge too (not only the current versions)."""

    key: ConfigKey
    revision: int
    md5: str
    origin: str
    committed: bool
    history: int = 0  # a hash of the versions kept (ConfigStore.history_hash); 0: unknown

    @classmethod
    def of(cls, entry: ConfigEntry, history: int = 0) -> ConfigDigest:
        return cls(entry.key, entry.revision, entry.md5, entry.origin, entry.committed, history)


VERSION_BYTES = 1024  # what the byte quotas count for a kept version beside its content:
# a node holds ~0.8-1 KB of Python objects per version whatever its content (the entry,
# its md5 and request id, the history's slots; review85 F1 measured 1,006 bytes of RSS a
# version, 10,000 versions of 5 characters), so content alone let steady publishing of
# small configs grow a node by ~1 GB under a 256 MiB quota


@dataclass(frozen=True, slots=True)
class ConfigLimits:
    """The node's configuration-center limits (defaults above, with their units)."""

    max_content_bytes: int = DEFAULT_MAX_CONTENT_BYTES
    keep_revisions: int | None = DEFAULT_KEEP_REVISIONS  # None: no count limit
    keep_seconds: float | None = DEFAULT_KEEP_SECONDS  # None: no age limit
    prune_step: int = DEFAULT_PRUNE_STEP
    max_configs: int = DEFAULT_MAX_CONFIGS
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES
    max_configs_per_namespace: int = DEFAULT_MAX_CONFIGS_PER_NAMESPACE  # 0: no such limit
    max_tombstones: int = DEFAULT_MAX_TOMBSTONES
    max_bytes_per_namespace: int = DEFAULT_MAX_BYTES_PER_NAMESPACE  # 0: no such limit
    # the limit is the default (not set): a namespace held above it when the node loads
    # or catches up (written before the limit existed) keeps a quarter of it as room
    # above what it holds (``ConfigStore.room_for_held``; review41 F1)
    room_for_held: bool = False

    @property
    def held_limit(self) -> int:
        """Data ids held (live and deleted) at most: the memory backstop."""
        return HELD_FACTOR * (self.max_configs + self.max_tombstones)

    def __post_init__(self) -> None:
        if not 0 < self.max_content_bytes <= HARD_MAX_CONTENT_BYTES:
            raise ValueError(
                f"max_content_bytes must be 1..{HARD_MAX_CONTENT_BYTES} bytes (10 MiB), "
                f"got {self.max_content_bytes}"
            )
        if self.keep_revisions is not None and self.keep_revisions < 1:
            raise ValueError("keep_revisions must be at least 1 (or None: no count limit)")
        if self.keep_seconds is not None and not self.keep_seconds > 0:
            raise ValueError("keep_seconds must be above 0 (or None: no age limit)")
        if self.prune_step < 1 or self.max_configs < 1:
            raise ValueError("prune_step and max_configs must be at least 1")
        if self.max_configs_per_namespace < 0:
            raise ValueError("max_configs_per_namespace must be 0 (no limit) or more")
        if self.max_tombstones < 1:
            raise ValueError("max_tombstones must be at least 1")
        one = self.max_content_bytes + VERSION_BYTES  # one version at the content cap
        if self.max_total_bytes < one:
            raise ValueError(
                f"max_total_bytes ({self.max_total_bytes}) must be at least max_content_bytes "
                f"({self.max_content_bytes}) + {VERSION_BYTES} (what one version counts)"
            )
        if self.max_bytes_per_namespace and self.max_bytes_per_namespace < one:
            raise ValueError(
                f"max_bytes_per_namespace ({self.max_bytes_per_namespace}) must be 0 (no "
                f"limit) or at least max_content_bytes ({self.max_content_bytes}) + "
                f"{VERSION_BYTES} (what one version counts)"
            )


# -- checks (the core runs them; wire/config_messages runs the same on untrusted bodies) --
def check_config_name(value: Any, field_name: str, max_len: int) -> str:
    if type(value) is not str:
        if value is None:
            raise invalid(
                f"field '{field_name}' is required (a string of 1..{max_len} characters)",
                "bad_name",
            )
        raise invalid(f"field '{field_name}' must be a string", "bad_name")
    if not 0 < len(value) <= max_len:
        raise invalid(f"field '{field_name}' must be 1..{max_len} characters", "bad_name")
    if _NAME_RE.match(value) is None:
        raise invalid(
            f"field '{field_name}' {value[:64]!r} may only contain letters, digits and @.:_-",
            "bad_name",
        )
    return value


DOT_NAMES = (".", "..")  # in the alphabet, but path components: no new data id has them


def check_new_config_key(key: ConfigKey) -> ConfigKey:
    """A key a ``config_publish`` may create: no name is ``.`` or ``..``.  An export writes
    names as archive paths (``configs/<group>/<data_id>``) and the client's disk cache as
    file paths, where these two are the directory itself and its parent (review11: an export
    held ``configs/../x``).  Only the publish checks it (the one write that creates a data
    id), so a data id made before this rule can still be read, exported, rolled back and
    deleted; a peer's record or the disk is never refused for it."""
    for value, name in (
        (key.namespace, "namespace"),
        (key.group, "group"),
        (key.data_id, "data_id"),
    ):
        if value in DOT_NAMES:
            raise invalid(
                f"field '{name}' {value!r} is not a name a config may have: '.' and '..' "
                "are refused (they are path components in an export and a disk cache)",
                "bad_name",
            )
    return key


_KEY_CACHE: dict[tuple[Any, Any, Any], ConfigKey] = {}  # keys already validated
KEY_CACHE_MAX = 65_536  # entries; full: emptied (a bound, not an LRU)


def known_config_key(namespace: Any, group: Any, data_id: Any) -> ConfigKey | None:
    """The key if these exact names passed ``check_config_key`` before (it is cached),
    else None, never an error: the config-get fast path, which leaves anything it does
    not recognise to the full parse and its precise error."""
    if type(data_id) is not str:
        return None
    key = _KEY_CACHE.get((namespace, group, data_id))
    if key is None or (namespace is not None and type(namespace) is not str):
        return None
    if group is not None and type(group) is not str:
        return None
    return key


def check_config_key(namespace: Any, group: Any, data_id: Any) -> ConfigKey:
    """The validated key (names checked once: every record, ack, commit and get names a
    key, and the 3 name checks were a fifth of a peer message's decoding)."""
    raw = (namespace, group, data_id)
    try:
        key = _KEY_CACHE.get(raw)
    except TypeError:  # unhashable: the checks below name the field
        key = None
    if (
        key is not None  # only str (or None) values are cached; an equal str subclass is not
        and type(data_id) is str
        and (namespace is None or type(namespace) is str)
        and (group is None or type(group) is str)
    ):
        return key
    key = ConfigKey(
        check_config_name(
            DEFAULT_NAMESPACE if namespace is None else namespace, "namespace", MAX_NAMESPACE_LEN
        ),
        check_config_name(DEFAULT_GROUP if group is None else group, "group", MAX_GROUP_LEN),
        check_config_name(data_id, "data_id", MAX_DATA_ID_LEN),
    )
    if len(_KEY_CACHE) >= KEY_CACHE_MAX:
        _KEY_CACHE.clear()
    _KEY_CACHE[raw] = key
    return key


def check_request_id(value: Any) -> str:
    """A write's optional request id: '' when absent (nil), else 16..64 characters of
    letters, digits and ``_.:-`` (a UUID, 32 hex digits, base64url)."""
    if value is None:
        return ""
    if (
        type(value) is not str
        or not MIN_REQUEST_ID_LEN <= len(value) <= MAX_REQUEST_ID_LEN
        or _REQUEST_ID_RE.match(value) is None
    ):
        raise invalid(
            f"field 'request_id' must be a string of {MIN_REQUEST_ID_LEN}..{MAX_REQUEST_ID_LEN} "
            "letters, digits and _.:- (a random id per logical write, e.g. 32 hex digits; "
            "the same on every re-send of that write)",
            "bad_request_id",
        )
    return value


def check_content(content: Any, max_bytes: int, field_name: str = "content") -> str:
    """Text content: a str (or UTF-8 bytes) of at most ``max_bytes`` bytes of UTF-8."""
    if isinstance(content, bytes | bytearray | memoryview):
        raw = bytes(content)
        if len(raw) > max_bytes:
            raise _too_large(field_name, len(raw), max_bytes)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise invalid(
                f"field '{field_name}' is not valid UTF-8 (byte {exc.start}): configs are "
                "text; encode binary data (e.g. base64) first",
                "invalid_utf8",
            ) from None
    if type(content) is not str:
        raise invalid(f"field '{field_name}' must be a string (UTF-8 text)", "bad_content")
    if len(content) > max_bytes:  # at least one byte per character: too large already
        raise _too_large(field_name, len(content), max_bytes, "at least ")
    try:
        size = len(content.encode("utf-8"))
    except UnicodeEncodeError:
        raise invalid(
            f"field '{field_name}' holds a lone surrogate: not encodable as UTF-8",
            "invalid_utf8",
        ) from None
    if size > max_bytes:
        raise _too_large(field_name, size, max_bytes)
    return content


def _too_large(field_name: str, size: int, max_bytes: int, qualifier: str = "") -> ConfigRejected:
    return ConfigRejected(
        ErrorCode.TOO_LARGE,
        f"field '{field_name}' is {qualifier}{size} bytes; this node's limit is {max_bytes} bytes "
        f"(the node's [config] max_content_bytes; hard cap {HARD_MAX_CONTENT_BYTES})",
        "too_large",
    )


def check_type(value: Any) -> str:
    if value is None:
        return DEFAULT_CONFIG_TYPE
    if type(value) is not str:  # name the value and its type (it said "'int' is not ...")
        raise invalid(
            f"field 'type' must be a string, one of {', '.join(CONFIG_TYPES)} (got "
            f"{type(value).__name__} {repr(value)[:32]})",
            "unknown_type",
        )
    if value not in CONFIG_TYPES:
        raise invalid(
            f"field 'type' {value[:32]!r} is not a config type; use one of "
            f"{', '.join(CONFIG_TYPES)}",
            "unknown_type",
        )
    return value


def _check_printable(value: Any, what: str, max_len: int, reason: str) -> str:
    if type(value) is not str or len(value) > max_len or not value.isprintable():
        raise invalid(f"{what} must be printable text of at most {max_len} characters", reason)
    return value


def check_description(value: Any) -> str:
    if value is None:
        return ""
    if type(value) is not str or len(value) > MAX_DESCRIPTION_LEN:
        raise invalid(
            f"field 'desc' must be text of at most {MAX_DESCRIPTION_LEN} characters",
            "bad_description",
        )
    return value


def check_modified_by(value: Any) -> str:
    return _check_printable(value, "modified_by", MAX_MODIFIED_BY_LEN, "bad_modified_by")


def check_tags(value: Any) -> tuple[tuple[str, str], ...]:
    """A map of tag name (name alphabet) to printable value, at most MAX_TAGS."""
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise invalid("field 'tags' must be a map of string to string", "bad_tags")
    if len(value) > MAX_TAGS:
        raise invalid(f"field 'tags' has {len(value)} entries; the limit is {MAX_TAGS}", "bad_tags")
    out = []
    for k, v in value.items():
        check_config_name(k, "tags key", MAX_TAG_KEY_LEN)
        _check_printable(v, f"tag {k!r}", MAX_TAG_VALUE_LEN, "bad_tags")
        out.append((k, v))
    return tuple(sorted(out))


def check_gray_rule(labels: Any, addresses: Any, *, stored: bool = False) -> GrayRule:
    """A gray rule: a label selector and/or client addresses; an empty rule is refused.

    A client address is a host alone: the node knows a client by the IP address of its
    connection (ZeroMQ's Peer-Address), never its port, so a ``host:port`` entry would
    select nobody and is refused (review11).  ``stored``: a version already written (a
    peer's record, a node's disk, an archive being read) keeps such an entry as it is: a
    version the cluster holds is never refused for a rule made before this check."""
    pairs: list[tuple[str, str]] = []
    if labels is not None:
        if not isinstance(labels, Mapping):
            raise invalid("field 'labels' must be a map of string to string", "bad_gray_rule")
        if len(labels) > MAX_GRAY_LABELS:
            raise invalid(
                f"field 'labels' has {len(labels)} entries; the limit is {MAX_GRAY_LABELS}",
                "bad_gray_rule",
            )
        for k, v in labels.items():
            _check_printable(k, "a label key", MAX_LABEL_LEN, "bad_gray_rule")
            _check_printable(v, f"label {str(k)[:32]!r}", MAX_LABEL_LEN, "bad_gray_rule")
            if not k:
                raise invalid("a label key must not be empty", "bad_gray_rule")
            pairs.append((k, v))
    hosts: set[str] = set()
    if addresses is not None:
        if isinstance(addresses, str | bytes) or not isinstance(addresses, list | tuple | set):
            raise invalid("field 'clients' must be a list of addresses", "bad_gray_rule")
        if len(addresses) > MAX_GRAY_ADDRESSES:
            raise invalid(
                f"field 'clients' has {len(addresses)} addresses; the limit is "
                f"{MAX_GRAY_ADDRESSES}",
                "bad_gray_rule",
            )
        for a in addresses:
            _check_printable(a, "a client address", MAX_ADDRESS_LEN, "bad_gray_rule")
            if not a or " " in a:
                raise invalid(
                    f"client address {a!r} must be a host (an IP address)", "bad_gray_rule"
                )
            if not stored and _host_of(a) != a:
                raise invalid(
                    f"client address {a!r} names a port: give the host (IP) only, "
                    f"{_host_of(a)!r}; the node knows a client by the IP address of its "
                    "connection, never its port, so it would match no client",
                    "bad_gray_rule",
                )
            if not stored:
                _check_client_ip(a)
            hosts.add(a)
    if not pairs and not hosts:
        raise invalid(
            "a gray release needs a selector: give 'labels' (K=V pairs the client's labels "
            "must all match) or 'clients' (client addresses), or both",
            "gray_without_selector",
        )
    return GrayRule(tuple(sorted(pairs)), frozenset(hosts))


def _check_client_ip(address: str) -> None:
    """A gray rule's client entry is matched against the IP address of a connection, as
    the node prints it: anything else (a host name, ``*``, a network, a padded or
    IPv4-mapped form) would match no client, silently (review18 F7)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise invalid(
            f"client address {address!r} is not an IP address: the node knows a client by "
            "the IP address of its connection (no host names, wildcards or networks); "
            "give each client's IP address",
            "bad_gray_rule",
        ) from None
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    shown = str(mapped or ip)
    if shown != address:
        raise invalid(
            f"client address {address!r} is written {shown!r} where the node compares it; "
            f"give {shown!r}",
            "bad_gray_rule",
        )


def pattern_regex(pattern: Any) -> re.Pattern[str]:
    """A list pattern (name characters plus ``*`` any run and ``?`` one character)."""
    if pattern is None:
        pattern = "*"
    if type(pattern) is not str or not 0 < len(pattern) <= MAX_PATTERN_LEN:
        raise invalid(f"field 'pattern' must be 1..{MAX_PATTERN_LEN} characters", "bad_pattern")
    if _NAME_RE.match(pattern.replace("*", "a").replace("?", "a")) is None:
        raise invalid(
            "field 'pattern' may only contain letters, digits, @.:_- and the wildcards * and ?",
            "bad_pattern",
        )
    parts = ["." if c == "?" else ".*" if c == "*" else re.escape(c) for c in pattern]
    return re.compile("".join(parts) + r"\Z", re.S)
