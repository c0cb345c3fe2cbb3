"""The configuration center as the client sees it: typed results, checked on the way in.

A node's config replies and notifications are untrusted input like every other reply
(meshreg/client/messages): each is checked here for the types and shapes the client reads
and turned into a frozen dataclass, or :class:`RemoteProtocolError` names the field.
The wire contract is docs/CONFIG.md ("Planned wire operations") and its results:

* an entry map (``ConfigEntry.to_wire()`` on the node) -> :class:`ConfigInfo`;
* ``config_list`` / ``config_history`` -> :class:`ConfigPage`;
* ``config_listen`` -> :class:`ListenAnswer`;
* a notification on a config topic (``b"\\x00config\\x00" ns \\x00 group \\x00 data_id \\x00``)
  -> :class:`ConfigChanged`.

As for the registry's results, the checks are on types, not on request limits: a newer
node may allow more, and keys a check does not know are allowed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from meshreg.configcenter.model import ConfigKey
from meshreg.errors import RemoteProtocolError

CONFIG_TOPIC_PREFIX = b"\x00config\x00"  # every config topic starts so (no service topic can)
MAX_NAME_LEN = 1024  # chars; a name in a reply (the request limits are lower: lenient)
MAX_SHORT_LEN = 4096  # chars; md5, type, change, origin, modified_by, a tag

# A listener's signature: callback(content, revision); content None: absent or deleted.
ConfigListener = Callable[[str | None, int], None]


@dataclass(frozen=True)
class GrayInfo:
    """A data id's gray version (present only when one exists)."""

    content: str
    type: str
    md5: str
    labels: dict[str, str] = field(default_factory=dict)
    clients: tuple[str, ...] = ()

    def selects_labels(self, labels: dict[str, str]) -> bool:
        """Whether the rule selects a client with ``labels`` by them (it may also select
        it by its address: ``clients``)."""
        return bool(self.labels) and all(labels.get(k) == v for k, v in self.labels.items())


@dataclass(frozen=True)
class MainInfo:
    """A data id's main version, kept beside the gray one a client was served
    (``ConfigInfo.main``)."""

    content: str
    type: str
    md5: str


@dataclass(frozen=True)
class ConfigInfo:
    """One data id at one revision, as a node answered it (or as kept on disk).

    ``content``, ``type`` and ``md5`` are what this client is served: the gray version's
    when ``gray_served`` (this client matches the gray rule), else the main one's;
    ``main``: the main one's then (from nodes that send it).  ``gray_host``: whether the
    gray rule lists this client's address, whatever its labels (None: the rule names no
    hosts, or the node did not say).  ``from_cache``: read from the client's
    ``cache_dir`` because no node answered.  ``pending`` (history only): no majority
    has acknowledged this version yet, and the node does not show it to readers.
    """

    namespace: str
    group: str
    data_id: str
    content: str
    type: str
    md5: str
    revision: int
    modified: float  # s since the epoch, on the node that assigned the revision
    modified_by: str = ""
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    deleted: bool = False
    change: str = "publish"
    origin: str = ""
    gray: GrayInfo | None = None
    gray_served: bool = False
    from_cache: bool = False
    main: MainInfo | None = None
    gray_host: bool | None = None
    pending: bool = False

    @property
    def key(self) -> ConfigKey:
        return ConfigKey(self.namespace, self.group, self.data_id)

    def to_json(self) -> dict[str, Any]:
        """The map ``meshreg config get --json`` prints (and the disk cache keeps)."""
        out: dict[str, Any] = {
            "namespace": self.namespace,
            "group": self.group,
            "data_id": self.data_id,
            "content": self.content,
            "type": self.type,
            "md5": self.md5,
            "revision": self.revision,
            "modified": self.modified,
            "modified_by": self.modified_by,
            "description": self.description,
            "tags": dict(self.tags),
            "deleted": self.deleted,
            "change": self.change,
            "origin": self.origin,
            "gray_served": self.gray_served,
            "gray": None,  # (always there: review33's nit, the documented keys)
        }
        if self.gray is not None:
            out["gray"] = {
                "content": self.gray.content,
                "type": self.gray.type,
                "md5": self.gray.md5,
                "labels": dict(self.gray.labels),
                "clients": list(self.gray.clients),
            }
        if self.main is not None:
            out["main"] = {"content": self.main.content, "type": self.main.type,
                           "md5": self.main.md5}  # fmt: skip
        if self.gray_host is not None:
            out["gray_host"] = self.gray_host
        if self.from_cache:
            out["from_cache"] = True
        return out

    def served_to(self, labels: dict[str, str], host_selected: bool | None) -> ConfigInfo | None:
        """This version as a client with ``labels`` is served it (the disk copy of another
        client's read: review17 F1): the gray version if the rule's labels are among
        ``labels``, or if it names hosts and ``host_selected`` (this host was served it
        by address); else the main one.  None: the main one is needed and not here (a
        copy saved by a gray client from a node that did not send ``main``)."""
        gray = self.gray
        if gray is None:
            return None if self.gray_served else self
        if gray.selects_labels(labels) or (bool(gray.clients) and host_selected is True):
            main = self.main if self.gray_served else MainInfo(self.content, self.type, self.md5)
            return dataclasses.replace(self, content=gray.content, type=gray.type,
                                       md5=gray.md5, gray_served=True, main=main)  # fmt: skip
        if not self.gray_served:
            return self
        if self.main is None:
            return None
        return dataclasses.replace(self, content=self.main.content, type=self.main.type,
                                   md5=self.main.md5, gray_served=False, main=None)  # fmt: skip


@dataclass(frozen=True)
class ConfigPage:
    """A page of ``config_list`` (entries without content) or ``config_history``."""

    items: tuple[ConfigInfo, ...]
    next_cursor: Any  # None on the last page; otherwise sent back as it came


@dataclass(frozen=True)
class ListenAnswer:
    """``config_listen``: the node's current revision (0: none), the entry when it is newer
    than what the client holds (resolved for this client), and whether it is deleted."""

    revision: int
    entry: ConfigInfo | None
    deleted: bool


@dataclass(frozen=True)
class ConfigChanged:
    """A config notification: the data id is now at ``revision`` on the sending node."""

    key: ConfigKey
    revision: int
    md5: str
    deleted: bool = False
    gray: bool = False
    # the gray version's md5 ("" without one; None: a node that does not send it)
    gray_md5: str | None = None


# -- checks ----------------------------------------------------------------------------------
def _bad(what: str) -> RemoteProtocolError:
    return RemoteProtocolError(what)


def _map(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        kind = "nil" if value is None else f"a {type(value).__name__}"
        raise _bad(f"{what} is {kind}, not a map")
    return value


def _str(value: Any, what: str, max_len: int = MAX_SHORT_LEN, empty: bool = True) -> str:
    if type(value) is not str or len(value) > max_len or (not value and not empty):
        raise _bad(f"{what} must be a string of {0 if empty else 1}..{max_len} characters")
    return value


def _content(value: Any, what: str) -> str:
    if type(value) is str:
        return value
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise _bad(f"{what} is not valid UTF-8") from None
    raise _bad(f"{what} must be a string")


def _uint(value: Any, what: str) -> int:
    if type(value) is not int or value < 0:
        raise _bad(f"{what} must be an unsigned integer")
    return value


def _bool(value: Any, what: str) -> bool:
    if type(value) is not bool:
        raise _bad(f"{what} must be true or false")
    return value


def _str_map(value: Any, what: str) -> dict[str, str]:
    m = _map(value, what)
    if not all(type(k) is str and type(v) is str for k, v in m.items()):
        raise _bad(f"{what} must map strings to strings")
    return dict(m)


def _opt(m: dict[str, Any], key: str, check: Callable[[Any, str], Any], default: Any) -> Any:
    value = m.get(key)
    return default if value is None else check(value, key)


def config_info_from_map(raw: Any, what: str = "the entry", content: bool = True) -> ConfigInfo:
    """A node's entry map -> ConfigInfo; ``content`` False: a list item (no content)."""
    m = _map(raw, what)

    def name(key: str) -> str:
        return _str(m.get(key), f"{what} {key}", MAX_NAME_LEN, empty=False)

    modified = m.get("modified", 0.0)
    if type(modified) not in (int, float) or not math.isfinite(modified):
        raise _bad(f"{what} modified must be a finite number")
    gray = None
    if m.get("gray") is not None:
        g = _map(m["gray"], f"{what} gray")
        clients = g.get("clients") or []
        if not isinstance(clients, list) or not all(type(c) is str for c in clients):
            raise _bad(f"{what} gray clients must be a list of strings")
        gray = GrayInfo(
            _content(g.get("content", ""), f"{what} gray content"),
            _str(g.get("type", "text"), f"{what} gray type"),
            _str(g.get("md5", ""), f"{what} gray md5"),
            _opt(g, "labels", _str_map, {}),
            tuple(clients),
        )
    main = None
    if m.get("main") is not None:
        mm = _map(m["main"], f"{what} main")
        main = MainInfo(
            _content(mm.get("content", ""), f"{what} main content"),
            _str(mm.get("type", "text"), f"{what} main type"),
            _str(mm.get("md5", ""), f"{what} main md5"),
        )
    text = m.get("content")
    return ConfigInfo(
        namespace=name("namespace"),
        group=name("group"),
        data_id=name("data_id"),
        content=_content(text, f"{what} content") if content or text is not None else "",
        type=_str(m.get("type", "text"), f"{what} type"),
        md5=_str(m.get("md5", ""), f"{what} md5"),
        revision=_uint(m.get("revision"), f"{what} revision"),
        modified=float(modified),
        modified_by=_opt(m, "modified_by", _str, ""),
        description=_opt(m, "description", _str, ""),
        tags=_opt(m, "tags", _str_map, {}),
        deleted=_opt(m, "deleted", _bool, False),
        change=_opt(m, "change", _str, "publish"),
        origin=_opt(m, "origin", _str, ""),
        gray=gray,
        gray_served=_opt(m, "gray_served", _bool, False),
        from_cache=_opt(m, "from_cache", _bool, False),
        main=main,
        gray_host=_opt(m, "gray_host", _bool, None),
        pending=_opt(m, "pending", _bool, False),
    )


def _page(raw: Any, content: bool, cursor_type: type) -> ConfigPage:
    r = _map(raw, "the result")
    items = r.get("items")
    if not isinstance(items, list):
        raise _bad("items must be a list")
    cursor = r.get("next_cursor")
    if cursor is not None and type(cursor) is not cursor_type:
        raise _bad(f"next_cursor must be nil or a {cursor_type.__name__}")
    return ConfigPage(
        tuple(config_info_from_map(d, f"items[{i}]", content) for i, d in enumerate(items)),
        cursor,
    )


def decode_listen(raw: Any) -> ListenAnswer:
    r = _map(raw, "the result")
    entry = r.get("entry")
    return ListenAnswer(
        _uint(r.get("revision", 0), "revision"),
        None if entry is None else config_info_from_map(entry),
        _opt(r, "deleted", _bool, False),
    )


ENTRY_OPS = frozenset(
    (
        "config_publish",
        "config_get",
        "config_delete",
        "config_rollback",
        "config_gray",
        "config_promote",
        "config_gray_drop",
    )
)


def decode_config_result(op: str, raw: Any) -> Any:
    """The typed result of a ``config_*`` op; RemoteProtocolError when malformed."""
    if op in ENTRY_OPS:  # a publish asked with ``echo`` false: no content (the caller has it)
        return config_info_from_map(raw, "the result", op != "config_publish")
    if op == "config_list":
        return _page(raw, False, str)
    if op == "config_history":
        return _page(raw, True, int)
    if op == "config_listen":
        return decode_listen(raw)
    if op == "config_force_ready":
        m = _map(raw, "the result")
        return {
            "node": _str(m.get("node"), "node"),
            "was_ready": _bool(m.get("was_ready"), "was_ready"),
            "forced_ready": _bool(m.get("forced_ready"), "forced_ready"),
        }
    return raw  # config_unlisten: nothing to read


# -- notifications -----------------------------------------------------------------------------
def config_topic(key: ConfigKey) -> bytes:
    """The PUB/SUB topic of one data id (docs/CONFIG.md, notifications)."""
    parts = (key.namespace.encode(), key.group.encode(), key.data_id.encode(), b"")
    return CONFIG_TOPIC_PREFIX + b"\x00".join(parts)


def is_config_topic(topic: bytes) -> bool:
    return topic.startswith(CONFIG_TOPIC_PREFIX)


def decode_config_notification(frames: list[bytes]) -> ConfigChanged:
    """[topic, body] of a config notification -> ConfigChanged; RemoteProtocolError."""
    if len(frames) != 2:
        raise _bad(f"notification must have 2 frames, got {len(frames)}")
    try:
        msg = msgpack.unpackb(frames[1], raw=False, strict_map_key=False)
    except Exception as exc:
        raise _bad(f"config notification is not valid msgpack ({type(exc).__name__})") from None
    m = _map(msg, "config notification")
    if m.get("kind") != "config":
        raise _bad("a notification on a config topic is not of kind 'config'")
    key = ConfigKey(
        _str(m.get("namespace"), "namespace", MAX_NAME_LEN, empty=False),
        _str(m.get("group"), "group", MAX_NAME_LEN, empty=False),
        _str(m.get("data_id"), "data_id", MAX_NAME_LEN, empty=False),
    )
    if config_topic(key) != frames[0]:
        raise _bad("a config notification's body names another data id than its topic")
    return ConfigChanged(
        key,
        _uint(m.get("revision"), "revision"),
        _opt(m, "md5", _str, ""),
        _opt(m, "deleted", _bool, False),
        _opt(m, "gray", _bool, False),
        _opt(m, "gray_md5", _str, None),
    )
