"""The configuration center's reply results and notifications (docs/PROTOCOL.md 2.x, 4.3).

Results (the ``result`` of a reply, wire/replies ``encode_ok``):

* an entry: ``ConfigEntry.to_wire()`` (namespace, group, data_id, content, type, md5,
  revision, modified, modified_by, description, tags, deleted, change, origin, and
  ``gray`` when a gray version exists); a read resolved for one client also carries
  ``gray_served`` and, when it is true, the gray content, type and md5 in place of the
  main ones, and the main ones in ``main`` (so a client's disk copy can serve any client
  by its own labels: review17 F1).
* ``config_list``: ``{"items": [entry without content], "next_cursor": str or nil}``.
* ``config_history``: ``{"items": [entry], "next_cursor": int or nil}``; an entry not
  shown to readers yet (no majority acknowledged it) carries ``"pending": true``.
* ``config_listen``: ``{"revision", "entry" (resolved, or nil), "deleted"}``.

Notifications on the client XPUB (P+1): topic ``NUL "config" NUL ns NUL group NUL data_id
NUL`` (the leading NUL keeps them apart from every service topic: a service's namespace is
never empty), body ``{"v", "kind": "config", "namespace", "group", "data_id", "revision",
"md5", "deleted", "gray"}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack

from meshreg.configcenter.core import HistoryPage, ListPage
from meshreg.configcenter.model import ConfigEntry, ConfigKey
from meshreg.wire import limits

SEP = b"\x00"
CONFIG_TOPIC_PREFIX = SEP + b"config" + SEP  # every config topic starts with it


def config_topic(key: ConfigKey) -> bytes:
    """The notification topic of one data id."""
    return CONFIG_TOPIC_PREFIX + SEP.join(
        (key.namespace.encode(), key.group.encode(), key.data_id.encode(), b"")
    )


def config_namespace_topic(namespace: str, group: str | None = None) -> bytes:
    """The topic prefix of every data id of a namespace (or of one group of it)."""
    parts = [namespace.encode()] + ([group.encode()] if group is not None else [])
    return CONFIG_TOPIC_PREFIX + SEP.join((*parts, b""))


def parse_config_topic(topic: bytes) -> tuple[str, ...] | None:
    """The 1..3 names (namespace, group, data id) of a config topic or prefix; None if it
    is not one (the subscription gate and the ACL judge it by them)."""
    if not topic.startswith(CONFIG_TOPIC_PREFIX) or not topic.endswith(SEP):
        return None
    parts = topic[len(CONFIG_TOPIC_PREFIX) : -1].split(SEP)
    if not 1 <= len(parts) <= 3 or not all(parts):
        return None
    try:
        return tuple(p.decode("ascii") for p in parts)
    except UnicodeDecodeError:
        return None


def encode_config_change(entry: ConfigEntry) -> list[bytes]:
    """The notification of a data id's new current version (every node sends it)."""
    key = entry.key
    body = {
        "v": limits.PROTOCOL_VERSION,
        "kind": "config",
        "namespace": key.namespace,
        "group": key.group,
        "data_id": key.data_id,
        "revision": entry.revision,
        "md5": entry.md5,
        "deleted": entry.deleted,
        "gray": entry.gray is not None,
        # a listener served the gray version tells from it whether what it holds changed
        # (without it, it pulled again on every notification: review29 F2)
        "gray_md5": entry.gray.md5 if entry.gray is not None else "",
    }
    return [config_topic(key), msgpack.packb(body)]


def entry_result(
    entry: ConfigEntry, gray_served: bool = False, gray_host: bool | None = None
) -> dict[str, Any]:
    """An entry as a client gets it: the gray version's content, type and md5 if the gray
    rule selected the client, the main version's then in ``main``; ``gray_host`` (a read
    of a rule naming hosts): whether the client's address is among them."""
    out = entry.to_wire()
    out["gray_served"] = gray_served
    if gray_host is not None:
        out["gray_host"] = gray_host
    if gray_served and entry.gray is not None:
        out["main"] = {"content": entry.content, "type": entry.type, "md5": entry.md5}
        out["content"], out["type"], out["md5"] = (
            entry.gray.content,
            entry.gray.type,
            entry.gray.md5,
        )
    return out


def without_echo(result: dict[str, Any], op: str) -> dict[str, Any]:
    """A write's ``entry_result`` without the content its client sent (``echo`` false):
    a publish's main content (in ``main`` if the gray one was put in its place), a gray
    publish's gray content."""
    if op == "config_publish" and not result.get("gray_served"):
        result.pop("content", None)
    elif op == "config_publish" and isinstance(result.get("main"), dict):
        result["main"].pop("content", None)
    elif op == "config_gray" and isinstance(result.get("gray"), dict):
        result["gray"].pop("content", None)
    return result


def pack_entry_result(
    entry: ConfigEntry, gray_served: bool = False, gray_host: bool | None = None
) -> bytes:
    """``entry_result`` packed (for ``replies.encode_ok_packed``)."""
    packed: bytes = msgpack.packb(entry_result(entry, gray_served, gray_host))
    return packed


def listed(entry: ConfigEntry) -> dict[str, Any]:
    """An entry of a list: no content (main or gray)."""
    out = entry.to_wire()
    del out["content"]
    gray = out.get("gray")
    if gray is not None:
        del gray["content"]
    return out


def list_result(page: ListPage) -> dict[str, Any]:
    return {"items": [listed(e) for e in page.items], "next_cursor": page.next_cursor}


def history_result(
    page: HistoryPage, pending: Callable[[ConfigEntry], bool] | None = None
) -> dict[str, Any]:
    """A history page; an entry ``pending(entry)`` is true of carries ``"pending": true``
    (not shown to readers yet: no majority acknowledged it; absent otherwise)."""
    items = []
    for e in page.items:
        out = e.to_wire()
        if pending is not None and pending(e):
            out["pending"] = True
        items.append(out)
    return {"items": items, "next_cursor": page.next_cursor}


def listen_result(
    current: ConfigEntry | None,
    held: int,
    resolved: dict[str, Any] | None,
    held_md5: str | None = None,
) -> dict[str, Any]:
    """``revision``: the current revision here (0: none); ``entry``: the resolved entry
    (``resolved``: the current version as this client is served it) if it is newer than
    ``held``, or at ``held`` but not the version the client holds (``held_md5``, when it
    sent one: another md5, '' for a delete), and not a delete; ``deleted``: the current
    one is a delete.  Two owners can assign one revision during a membership change; the
    md5 lets a resync or a reconnect repair a listener that pulled the version that lost
    it and missed every push of the winner (docs/PROTOCOL.md, config_listen)."""
    revision = current.revision if current is not None else 0
    deleted = current is not None and current.deleted
    served = "" if deleted or resolved is None else resolved["md5"]
    newer = revision > held or (
        revision == held and held_md5 is not None and held > 0 and served != held_md5
    )
    entry = resolved if newer and not deleted else None
    return {"revision": revision, "entry": entry, "deleted": deleted}
