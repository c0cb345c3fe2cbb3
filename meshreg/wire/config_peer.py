"""The configuration center's peer messages (node to node, on the peer port P+3).

Every config message between nodes is one-way: the sender's DEALER to the receiver's
peer ROUTER, as two frames ``[CONFIG_FRAME, body]`` (the ROUTER prepends the routing
id); an answer is a message of its own the other way.  So nothing waits on a socket and
the write protocol's resends and deadlines stay in ``configcenter/replication``.

Body: a msgpack map ``{"v": 1, "op": OP, "from": MEMBER, ...}``; ``from`` is the
sender's member id (its ``host:port``), which the receiver checks against its configured
members.

=====================  ===================================================================
op                     fields (besides v, op, from)
=====================  ===================================================================
config_sync            after (key or nil): "your digests after this data id, one page"
                       (a starting node's catch-up; absent: every digest, one message),
                       ask (optional, 1..2**31-1): echoed in the page
config_record          entry: a new version to persist and acknowledge; saved (optional,
                       true: the sender, its origin, voted for it and has it on disk)
config_ack             key, revision, origin, md5, ok, current (entry or nil); committed
                       (optional, true: marked committed on a saved record, majority 2)
config_commit          key, revision, origin, md5: a majority acknowledged it
config_fetch           key: the versions of your highest revision, please
config_key_versions    key, entries: the answer to config_fetch
config_digests         digests, reply, after + upto (keys or nil, optional): anti-entropy
                       (ConfigReplicator.on_digests) of the data ids in (after, upto];
                       ask (optional): the config_sync's this page answers
config_versions        entries: versions where the sender is ahead
config_forward         tag, request (the client's request map), by: a write for the
                       responsible node; reply_here (optional, true): answer on this
                       connection (the ROUTER's routing id back to the sender's DEALER),
                       which works whenever the forward arrived, also while the owner's
                       own connection to the sender is cut (review26 F1); absent (older
                       nodes): the reply goes out on the owner's DEALER
config_forward_reply   tag, ok, entry + gray (ok) or code + message (not ok; ``written``
                       false: refused before anything was written); ``unheard``
                       (optional, true, with ``written`` false): the sender is neither in
                       the owner's list nor a learner it has heard yet (a node just
                       started): the sender tries the forward again for its grace;
                       ``current`` (optional, with CONFLICT): the current revision
config_batch           items: 1..MAX_BATCH_ITEMS maps, each {"op": config_record |
                       config_ack | config_commit, ...that op's fields}: what one loop turn
                       sends one peer, handled in order as if sent one by one
config_have            items: [[key, [[revision, hash], ...]], ...], reply, keep (optional):
                       the revisions kept of data ids whose histories differ, each with a
                       hash of its versions, and the sender's keep_revisions
                       (ConfigReplicator.on_have)
=====================  ===================================================================

A key is ``[namespace, group, data_id]``; an entry a map (``entry_to_wire``); a digest
``[namespace, group, data_id, revision, md5, origin, committed, history]``.

Validation: ``decode_config_peer`` bounds the body (size, strings by the content cap,
arrays, maps) before decoding, and ``parse_config_peer`` checks every field (names,
revision bounds, md5 format and that it is the content's, types, tags, gray rule, node
ids) and raises RemoteProtocolError naming the field; nothing reaches the store unchecked.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgpack

from meshreg.configcenter.model import (
    CONFIG_TYPES,
    DEFAULT_CONFIG_TYPE,
    HARD_MAX_CONTENT_BYTES,
    Change,
    ConfigDigest,
    ConfigEntry,
    ConfigKey,
    ConfigRejected,
    GrayRelease,
    check_config_key,
    check_content,
    check_description,
    check_gray_rule,
    check_modified_by,
    check_request_id,
    check_tags,
    check_type,
    content_md5,
)
from meshreg.configcenter.replication import (
    FetchVersions,
    RevisionHash,
    SendAck,
    SendCommit,
    SendDigests,
    SendHave,
    SendKeyVersions,
    SendRecord,
    SendVersions,
)
from meshreg.errors import ErrorCode, RemoteProtocolError, RequestRejected
from meshreg.wire import limits
from meshreg.wire.config_messages import CONFIG_BODY_OVERHEAD, MAX_REVISION, parse_config_message

CONFIG_FRAME = b"config"  # the first frame of every config peer message
CONFIG_PEER_OPS = (
    "config_sync",
    "config_record",
    "config_ack",
    "config_commit",
    "config_fetch",
    "config_key_versions",
    "config_digests",
    "config_versions",
    "config_forward",
    "config_forward_reply",
    "config_batch",
    "config_have",
)  # append-only
BATCH_OPS = ("config_record", "config_ack", "config_commit")  # the ops a batch may carry
MAX_BATCH_ITEMS = 4096  # items in one config_batch (more: several messages)
# One message of versions carries at most this much content (more: several messages), so
# a body stays far below the peer port's frame limit (``config_peer_frame_bytes``).
VERSIONS_CHUNK_BYTES = 4 * 1024 * 1024  # bytes of content per config_versions message
MAX_CONFIG_DIGESTS = 200_000  # digests in one message (a node holds <= 100,000 data ids)
MAX_HAVE_KEYS = 200_000  # data ids in one config_have message
MAX_HAVE_IDS = 8 * 100_000  # revisions in one config_have message (all its data ids)
HAVE_CHUNK_IDS = 8192  # revisions per config_have message sent (~120 KB; more: several)
DIGEST_BYTES = 1_000  # bytes; an upper bound of one encoded digest (names <= 448 chars)
MAX_TAG = 2**64 - 1  # a forward's tag
MAX_ERROR_MESSAGE = 4096  # chars of a forwarded error's message
_MD5_RE = re.compile(r"[0-9a-f]{32}\Z")


def config_peer_frame_bytes(max_content_bytes: int) -> int:
    """The peer port's frame limit with configs: the largest config message (a chunk of
    versions plus one entry with its main and gray content, or a full digest list), and
    never below the registry's own peer limit."""
    return max(
        limits.MAX_PEER_BODY_BYTES + 1024,
        VERSIONS_CHUNK_BYTES + 2 * max_content_bytes + 2 * CONFIG_BODY_OVERHEAD,
        MAX_CONFIG_DIGESTS * 100,
    )


def config_frame_bytes(max_content_bytes: int) -> int:
    """The client port's frame limit with configs: twice a config body's limit (content
    cap + overhead), so content up to twice the cap still gets a TOO_LARGE reply that
    names the cap (beyond it, libzmq drops the connection); every other op is still
    refused above ``MAX_BODY_BYTES`` by the decoder."""
    return max(limits.MAX_FRAME_BYTES, 2 * (max_content_bytes + CONFIG_BODY_OVERHEAD))


# -- parsed messages ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ConfigSync:
    """A starting node's ask for a page of digests after ``after`` (None: the first);
    ``paged`` False: no ``after`` field at all (a node before pages: every digest in one
    answer)."""

    sender: str
    after: ConfigKey | None = None
    paged: bool = True
    ask: int = 0  # the asker's catch-up number (0: none), echoed in the page


@dataclass(frozen=True, slots=True)
class ConfigRecord:
    sender: str
    entry: ConfigEntry
    saved: bool = False


@dataclass(frozen=True, slots=True)
class ConfigAck:
    sender: str
    key: ConfigKey
    revision: int
    origin: str
    md5: str
    ok: bool
    current: ConfigEntry | None
    committed: bool = False


@dataclass(frozen=True, slots=True)
class ConfigCommit:
    sender: str
    key: ConfigKey
    revision: int
    origin: str
    md5: str


@dataclass(frozen=True, slots=True)
class ConfigFetch:
    sender: str
    key: ConfigKey
    request_id: str = ""  # a re-sent write's id ('': the top revision only)


@dataclass(frozen=True, slots=True)
class ConfigKeyVersions:
    sender: str
    key: ConfigKey
    entries: tuple[ConfigEntry, ...]
    request_id: str = ""  # the fetch's
    fresh: bool = False  # the sender's store is not intact: not counted (docs/CONFIG.md)
    floor: int = 0  # the sender's purged floor of the data id's bucket (docs/CONFIG.md)


@dataclass(frozen=True, slots=True)
class ConfigDigests:
    sender: str
    digests: tuple[ConfigDigest, ...]
    reply: bool
    after: ConfigKey | None = None  # the key range covered: (after, upto]; None: open
    upto: ConfigKey | None = None
    ask: int = 0  # the config_sync this page answers (0: none, or a round's step)
    fresh: bool = False  # the sender's store is not intact: not counted (docs/CONFIG.md)
    known: bool = False  # the sender saw the receiver's store whole before (docs/CONFIG.md)
    joining: bool = False  # the sender's store is not whole and joins a cluster with configs


@dataclass(frozen=True, slots=True)
class ConfigHave:
    sender: str
    items: tuple[tuple[ConfigKey, tuple[RevisionHash, ...]], ...]
    reply: bool
    keep: int | None = None  # the sender's keep_revisions (None: no limit, or an older node)


@dataclass(frozen=True, slots=True)
class ConfigVersions:
    sender: str
    entries: tuple[ConfigEntry, ...]


@dataclass(frozen=True, slots=True)
class ConfigForward:
    """A client's write, sent on to the responsible node: ``request`` is the parsed
    request (wire/config_messages), ``by`` who made it (the client's key name)."""

    sender: str
    tag: int
    request: Any
    by: str
    raw: dict[str, Any] | None = None  # the request map as it came (passed on as it is)
    reply_here: bool = False  # answer on the connection it came on (the sender reads it)


@dataclass(frozen=True, slots=True)
class ConfigForwardReply:
    sender: str
    tag: int
    ok: bool
    entry: ConfigEntry | None
    gray: bool
    code: ErrorCode | None  # None: ok
    message: str
    unwritten: bool = False  # refused before anything was written (``written`` false)
    unheard: bool = False  # the owner has not heard the sender yet: worth trying again
    current: int | None = None  # a CAS's CONFLICT: the current revision, relayed


@dataclass(frozen=True, slots=True)
class ConfigBatch:
    """Records, acks and commits for one peer, in their order (``config_batch``)."""

    sender: str
    items: tuple[ConfigRecord | ConfigAck | ConfigCommit, ...]


ConfigPeerMessage = (
    ConfigSync
    | ConfigRecord
    | ConfigAck
    | ConfigCommit
    | ConfigFetch
    | ConfigKeyVersions
    | ConfigDigests
    | ConfigVersions
    | ConfigForward
    | ConfigForwardReply
    | ConfigBatch
    | ConfigHave
)


# -- encoding ----------------------------------------------------------------------------
def key_to_wire(key: ConfigKey) -> list[str]:
    return [key.namespace, key.group, key.data_id]


def entry_to_wire(e: ConfigEntry) -> dict[str, Any]:
    gray = None
    if e.gray is not None:
        g = e.gray
        gray = {
            "content": g.content,
            "type": g.type,
            "md5": g.md5,
            "labels": dict(g.rule.labels),
            "clients": sorted(g.rule.addresses),
        }
    wire: dict[str, Any] = {
        "key": key_to_wire(e.key),
        "revision": e.revision,
        "origin": e.origin,
        "content": e.content,
        "type": e.type,
        "md5": e.md5,
        "modified": e.modified,
        "modified_by": e.modified_by,
        "description": e.description,
        "tags": dict(e.tags),
        "deleted": e.deleted,
        "change": e.change.value,
        "gray": gray,
        "committed": e.committed,
    }
    if e.request_id:  # optional: a peer that does not know it ignores it
        wire["request_id"] = e.request_id
    return wire


def digest_to_wire(d: ConfigDigest) -> list[Any]:
    return [*key_to_wire(d.key), d.revision, d.md5, d.origin, d.committed, d.history]


def encode_config_peer(op: str, sender: str, **fields: Any) -> list[bytes]:
    """The frames of one config peer message (``[CONFIG_FRAME, body]``)."""
    body = {"v": limits.PROTOCOL_VERSION, "op": op, "from": sender, **fields}
    return [CONFIG_FRAME, msgpack.packb(body)]


def replication_item(effect: SendRecord | SendAck | SendCommit) -> dict[str, Any]:
    """One record, ack or commit as a map ``{"op": ..., fields}``: the body of its single
    message without ``v`` and ``from``, and an item of ``config_batch``."""
    match effect:
        case SendRecord():
            if effect.saved:  # absent when false: the bytes of before (older nodes)
                return {"op": "config_record", "entry": entry_to_wire(effect.entry),
                        "saved": True}  # fmt: skip
            return {"op": "config_record", "entry": entry_to_wire(effect.entry)}
        case SendAck():
            current = None if effect.current is None else entry_to_wire(effect.current)
            item = {
                "op": "config_ack",
                "key": key_to_wire(effect.key),
                "revision": effect.revision,
                "origin": effect.origin,
                "md5": effect.md5,
                "ok": effect.ok,
                "current": current,
            }
            if effect.committed:
                item["committed"] = True
            return item
        case SendCommit():
            return {
                "op": "config_commit",
                "key": key_to_wire(effect.key),
                "revision": effect.revision,
                "origin": effect.origin,
                "md5": effect.md5,
            }
    raise TypeError(f"not a batchable config effect: {effect!r}")


def encode_batches(
    sender: str,
    effects: Iterable[SendRecord | SendAck | SendCommit],
    packed: dict[Any, tuple[Any, bytes]] | None = None,
) -> list[list[bytes]]:
    """The messages carrying one peer's records, acks and commits in order: ``config_batch``
    messages of at most ``MAX_BATCH_ITEMS`` items and ``VERSIONS_CHUNK_BYTES`` of packed
    items (content and metadata: a gray rule's client list can be larger than its
    content), and a single message (its own op) for an item alone.  ``packed``: the
    packed records and commits of other peers' batches of the same turn, reused (the
    same item goes to every peer), and this batch's added."""
    messages: list[list[bytes]] = []
    chunk: list[tuple[SendRecord | SendAck | SendCommit, dict[str, Any] | None]] = []
    raws: list[bytes] = []
    size = 0

    def close() -> None:
        if len(chunk) == 1:
            effect, item = chunk[0]
            item = replication_item(effect) if item is None else item
            messages.append(encode_config_peer(sender=sender, **item))
        elif chunk:  # the batch's map with the packed items spliced into its "items" array
            head = encode_config_peer("config_batch", sender, items=[])[1]
            body = head[:-1] + _array_header(len(raws)) + b"".join(raws)
            messages.append([CONFIG_FRAME, body])

    for effect in effects:
        item: dict[str, Any] | None = None
        raw = _packed_item(effect, packed) if packed is not None else None
        if raw is None:
            item = replication_item(effect)
            raw = msgpack.packb(item)
            if packed is not None:
                _keep_packed(effect, raw, packed)
        if chunk and (len(chunk) >= MAX_BATCH_ITEMS or size + len(raw) > VERSIONS_CHUNK_BYTES):
            close()
            chunk, raws, size = [], [], 0
        chunk.append((effect, item))
        raws.append(raw)
        size += len(raw)
    close()
    return messages


def _packed_item(effect: Any, packed: dict[Any, tuple[Any, bytes]]) -> bytes | None:
    """A record's (the same entry object) or a commit's (the same fields) packed item
    made for another peer, or None (an ack is per peer: never kept)."""
    if type(effect) is SendRecord:
        found = packed.get((id(effect.entry), effect.saved))
        return found[1] if found is not None and found[0] is effect.entry else None
    if type(effect) is SendCommit:
        found = packed.get((effect.key, effect.revision, effect.origin, effect.md5))
        return found[1] if found is not None else None
    return None


def _keep_packed(effect: Any, raw: bytes, packed: dict[Any, tuple[Any, bytes]]) -> None:
    if type(effect) is SendRecord:  # by identity; the entry is kept with it (no id reuse)
        packed[(id(effect.entry), effect.saved)] = (effect.entry, raw)
    elif type(effect) is SendCommit:
        packed[(effect.key, effect.revision, effect.origin, effect.md5)] = (None, raw)


def _array_header(n: int) -> bytes:
    """msgpack's header of an array of ``n`` elements (``items`` is packed last, empty:
    ``0x90``, replaced by this)."""
    if n < 16:
        return bytes((0x90 | n,))
    if n < 2**16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def encode_replication_effect(sender: str, effect: Any) -> list[list[bytes]]:
    """The messages of one of the replicator's send effects (versions in chunks)."""
    match effect:
        case SendRecord() | SendAck() | SendCommit():
            return [encode_config_peer(sender=sender, **replication_item(effect))]
        case FetchVersions():
            rid = {"request_id": effect.request_id} if effect.request_id else {}
            return [encode_config_peer("config_fetch", sender, key=key_to_wire(effect.key), **rid)]
        case SendKeyVersions():
            rid = {"request_id": effect.request_id} if effect.request_id else {}
            return [
                encode_config_peer(
                    "config_key_versions",
                    sender,
                    key=key_to_wire(effect.key),
                    entries=[entry_to_wire(e) for e in effect.entries],
                    **rid,
                    **({"fresh": True} if effect.fresh else {}),
                    **({"floor": effect.floor} if effect.floor else {}),
                )
            ]
        case SendDigests():
            ranged = {} if effect.after is None and effect.upto is None else {
                "after": None if effect.after is None else key_to_wire(effect.after),
                "upto": None if effect.upto is None else key_to_wire(effect.upto),
            }  # fmt: skip
            return [
                encode_config_peer(
                    "config_digests",
                    sender,
                    digests=[digest_to_wire(d) for d in effect.digests],
                    reply=effect.reply,
                    **ranged,
                    **({"ask": effect.ask} if effect.ask else {}),
                    **({"fresh": True} if effect.fresh else {}),
                    **({"known": True} if effect.known else {}),
                    **({"joining": True} if effect.joining else {}),
                )
            ]
        case SendHave():
            keep = {} if effect.keep is None else {"keep": effect.keep}
            return [
                encode_config_peer("config_have", sender, items=chunk, reply=effect.reply, **keep)
                for chunk in _have_chunks(effect.items)
            ]
        case SendVersions():
            return [
                encode_config_peer("config_versions", sender, entries=chunk)
                for chunk in _chunks(effect.entries)
            ]
    raise TypeError(f"not a config send effect: {effect!r}")


def _have_chunks(
    items: Iterable[tuple[ConfigKey, tuple[RevisionHash, ...]]],
) -> Iterable[list[list[Any]]]:
    """``config_have`` items in messages of at most ``HAVE_CHUNK_IDS`` revisions (a data
    id's list is never split; one longer than that goes alone): a step's 1,024 data ids
    with 100 revisions kept each would be one message of ~1.5 MB.  Each item is handled
    on its own by the receiver, so the chunks mean what the whole list meant."""
    chunk: list[list[Any]] = []
    size = 0
    for key, ids in items:
        if chunk and size + len(ids) > HAVE_CHUNK_IDS:
            yield chunk
            chunk, size = [], 0
        chunk.append([key_to_wire(key), [list(i) for i in ids]])
        size += len(ids)
    if chunk:
        yield chunk


def _chunks(entries: Iterable[ConfigEntry]) -> Iterable[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    size = 0
    for e in entries:
        chunk.append(entry_to_wire(e))
        size += len(e.content) + (len(e.gray.content) if e.gray else 0)
        if size >= VERSIONS_CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


# -- decoding and validation -------------------------------------------------------------
def decode_config_peer(
    body: bytes, max_content_bytes: int = HARD_MAX_CONTENT_BYTES
) -> ConfigPeerMessage:
    """Decode and validate one config peer message body; raises RemoteProtocolError."""
    max_bytes = config_peer_frame_bytes(max_content_bytes)
    if len(body) > max_bytes:
        raise RemoteProtocolError(
            f"config peer message is {len(body)} bytes; the limit is {max_bytes}",
            ErrorCode.TOO_LARGE,
        )
    try:
        msg = msgpack.unpackb(
            body,
            raw=False,
            strict_map_key=True,
            max_str_len=max_content_bytes,
            max_bin_len=max_content_bytes,
            max_ext_len=0,
            max_map_len=limits.MAX_MAP_ENTRIES,
            max_array_len=MAX_CONFIG_DIGESTS,
        )
    except Exception as exc:
        raise RemoteProtocolError(
            f"config peer message is not one bounded msgpack value ({type(exc).__name__})",
            ErrorCode.MALFORMED,
        ) from None
    return parse_config_peer(msg, max_content_bytes)


def parse_config_peer(
    msg: Any, max_content_bytes: int = HARD_MAX_CONTENT_BYTES
) -> ConfigPeerMessage:
    """Validate a decoded config peer message (every field)."""
    if not isinstance(msg, dict):
        raise _bad("the body must be a map")
    if msg.get("v") != limits.PROTOCOL_VERSION:
        raise _bad(f"field 'v' must be {limits.PROTOCOL_VERSION}")
    op = msg.get("op")
    if op not in CONFIG_PEER_OPS:
        shown = repr(op[:32]) if isinstance(op, str) else type(op).__name__
        raise _bad(f"unknown config peer op {shown}")
    sender = _node(msg.get("from"), "from")
    try:
        return _parse(msg, op, sender, max_content_bytes)
    except ConfigRejected as exc:
        raise _bad(f"{op}: {exc.message}") from None


def _parse(msg: dict[str, Any], op: str, sender: str, cap: int) -> ConfigPeerMessage:
    if op == "config_batch":
        return ConfigBatch(sender, _batch_items(msg.get("items"), sender, cap))
    if op == "config_sync":
        if "after" not in msg:
            return ConfigSync(sender, None, paged=False)
        after = msg["after"]
        return ConfigSync(sender, None if after is None else parse_key(after),
                          ask=_ask(msg.get("ask")))  # fmt: skip
    if op == "config_record":
        saved = msg.get("saved", False)
        return ConfigRecord(sender, parse_entry(msg.get("entry"), cap),
                            saved if saved is False else _bool(saved, "saved"))  # fmt: skip
    if op in ("config_ack", "config_commit"):
        key = parse_key(msg.get("key"))
        revision = _revision(msg.get("revision"), "revision")
        origin = _node(msg.get("origin"), "origin")
        md5 = _md5(msg.get("md5"), "md5")
        if op == "config_commit":
            return ConfigCommit(sender, key, revision, origin, md5)
        ok = _bool(msg.get("ok"), "ok")
        current = msg.get("current")
        committed = msg.get("committed", False)
        return ConfigAck(
            sender,
            key,
            revision,
            origin,
            md5,
            ok,
            None if current is None else parse_entry(current, cap, key),
            committed if committed is False else _bool(committed, "committed"),
        )
    if op == "config_fetch":
        return ConfigFetch(
            sender, parse_key(msg.get("key")), check_request_id(msg.get("request_id"))
        )
    if op == "config_key_versions":
        key = parse_key(msg.get("key"))
        return ConfigKeyVersions(sender, key, _entries(msg.get("entries"), cap, key),
                                 check_request_id(msg.get("request_id")),
                                 _flag(msg, "fresh"),
                                 0 if msg.get("floor") is None
                                 else _int(msg["floor"], "floor", 0, MAX_REVISION))  # fmt: skip
    if op == "config_digests":
        raw = msg.get("digests")
        if not isinstance(raw, list):
            raise _bad("field 'digests' must be an array")
        after, upto = msg.get("after"), msg.get("upto")
        after = None if after is None else parse_key(after)
        upto = None if upto is None else parse_key(upto)
        digests = tuple(parse_digest(d) for d in raw)
        if after is not None and upto is not None and not after < upto:
            raise _bad("config_digests: 'after' must come before 'upto' in key order")
        if after is not None or upto is not None:  # a range: every digest within it
            for d in digests:
                if (after is not None and d.key <= after) or (upto is not None and d.key > upto):
                    raise _bad(f"config_digests: the digest of {d.key} is outside the range "
                               "(after, upto] it claims to cover")  # fmt: skip
        return ConfigDigests(sender, digests, _bool(msg.get("reply"), "reply"), after, upto,
                             _ask(msg.get("ask")), _flag(msg, "fresh"),
                             _flag(msg, "known"), _flag(msg, "joining"))  # fmt: skip
    if op == "config_have":
        keep = msg.get("keep")
        return ConfigHave(
            sender,
            _have_items(msg.get("items")),
            _bool(msg.get("reply"), "reply"),
            None if keep is None else _int(keep, "keep", 1, MAX_REVISION),
        )
    if op == "config_versions":
        return ConfigVersions(sender, _entries(msg.get("entries"), cap))
    if op == "config_forward":
        tag = _int(msg.get("tag"), "tag", 0, MAX_TAG)
        request = msg.get("request")
        if not isinstance(request, dict) or request.get("op") not in _WRITE_OPS:
            raise _bad(f"field 'request' must be a config write request ({', '.join(_WRITE_OPS)})")
        try:
            parsed = parse_config_message(request, cap)
        except RequestRejected as exc:
            raise _bad(f"field 'request': {exc.message}") from None
        by = check_modified_by(msg.get("by"))
        return ConfigForward(
            sender, tag, parsed, by, request, _bool(msg.get("reply_here", False), "reply_here")
        )
    # config_forward_reply
    tag = _int(msg.get("tag"), "tag", 0, MAX_TAG)
    if _bool(msg.get("ok"), "ok"):
        entry = parse_entry(msg.get("entry"), cap)
        return ConfigForwardReply(
            sender, tag, True, entry, _bool(msg.get("gray"), "gray"), None, ""
        )
    code = _int(msg.get("code"), "code", 1, 2**31)
    try:
        error = ErrorCode(code)
    except ValueError:
        raise _bad(f"field 'code' {code} is not an error code") from None
    message = msg.get("message")
    if type(message) is not str or len(message) > MAX_ERROR_MESSAGE:
        raise _bad(f"field 'message' must be text of at most {MAX_ERROR_MESSAGE} characters")
    written = msg.get("written", True)
    if written is not True and written is not False:
        raise _bad("field 'written' must be a boolean")
    unheard = _bool(msg.get("unheard", False), "unheard")
    if unheard and written:
        raise _bad("field 'unheard' needs 'written' false (the forward was not taken)")
    cas_current: int | None = None  # (with another code: ignored, as a later field may be)
    if (raw := msg.get("current")) is not None and error is ErrorCode.CONFLICT:
        cas_current = _int(raw, "current", 0, MAX_REVISION)
    return ConfigForwardReply(
        sender, tag, False, None, False, error, message, not written, unheard, cas_current
    )


_WRITE_OPS = (
    "config_publish",
    "config_delete",
    "config_rollback",
    "config_gray",
    "config_promote",
    "config_gray_drop",
)


def parse_key(raw: Any) -> ConfigKey:
    if not isinstance(raw, list) or len(raw) != 3:
        raise _bad("field 'key' must be [namespace, group, data_id]")
    return check_config_key(*raw)


def parse_entry(raw: Any, cap: int, key: ConfigKey | None = None) -> ConfigEntry:
    """One version, every field checked; ``key``: the key it must be of.  (The checks
    run in a fixed order, the first failing one names its field; the usual values -
    no tags, no request id, no gray version - take the shortest way through them.)"""
    if not isinstance(raw, dict):
        raise _bad("an entry must be a map")
    get = raw.get
    entry_key = parse_key(get("key"))
    if key is not None and entry_key != key:
        raise _bad(f"an entry of {entry_key} where {key} was expected")
    content = check_content(get("content"), cap)
    md5 = get("md5")
    if type(md5) is not str or _MD5_MATCH(md5) is None:
        raise _bad("field 'md5' must be 32 lowercase hex digits")
    if md5 != content_md5(content):
        raise _bad(f"{entry_key}: field 'md5' is not the md5 of the content")
    modified: Any = get("modified")
    if type(modified) not in (int, float) or not math.isfinite(modified) or modified < 0:
        raise _bad("field 'modified' must be a finite number of seconds >= 0")
    change = get("change")
    change_value = _CHANGES.get(change) if type(change) is str else None
    if change_value is None:
        raise _bad(f"field 'change' must be one of {', '.join(c.value for c in Change)}")
    gray_raw = get("gray")
    gray = None
    if gray_raw is not None:
        if not isinstance(gray_raw, dict):
            raise _bad("field 'gray' must be a map or nil")
        gray_content = check_content(gray_raw.get("content"), cap, "gray content")
        gray_md5 = _md5(gray_raw.get("md5"), "gray md5")
        if gray_md5 != content_md5(gray_content):
            raise _bad(f"{entry_key}: field 'gray md5' is not the md5 of the gray content")
        rule = check_gray_rule(gray_raw.get("labels"), gray_raw.get("clients"), stored=True)
        gray = GrayRelease(gray_content, check_type(gray_raw.get("type")), gray_md5, rule)
    revision = get("revision")
    if type(revision) is not int or not 1 <= revision <= MAX_REVISION:
        raise _bad(f"field 'revision' must be an integer in 1..{MAX_REVISION}")
    origin = _node(get("origin"), "origin")
    kind = get("type")
    if kind is None:
        kind = DEFAULT_CONFIG_TYPE
    elif type(kind) is not str or kind not in CONFIG_TYPES:
        check_type(kind)  # raises, naming the type
    modified_by = check_modified_by(get("modified_by"))
    description = check_description(get("description"))
    tags = get("tags")
    tags = () if tags is None or (type(tags) is dict and not tags) else check_tags(tags)
    deleted = get("deleted")
    if type(deleted) is not bool:
        raise _bad("field 'deleted' must be true or false")
    committed = get("committed")
    if type(committed) is not bool:
        raise _bad("field 'committed' must be true or false")
    request_id = get("request_id")
    return ConfigEntry(
        entry_key,
        revision,
        origin,
        content,
        kind,
        md5,
        float(modified),
        modified_by,
        description,
        tags,
        deleted,
        change_value,
        gray,
        committed,
        "" if request_id is None else check_request_id(request_id),
    )


_CHANGES = {c.value: c for c in Change}  # a version's ``change`` field -> its Change
_MD5_MATCH = _MD5_RE.match


def parse_digest(raw: Any) -> ConfigDigest:
    if not isinstance(raw, list) or len(raw) != 8:
        raise _bad("a digest must be [namespace, group, data_id, revision, md5, origin, "
                   "committed, history]")  # fmt: skip
    ns, group, data_id, revision, md5, origin, committed, history = raw
    key = check_config_key(ns, group, data_id)
    revision = _int(revision, "digest revision", 0, MAX_REVISION)
    if revision == 0:  # "I lack this data id" (ConfigReplicator.on_digests)
        if md5 != "" or origin != "":
            raise _bad("a digest of revision 0 has an empty md5 and origin")
    else:
        md5 = _md5(md5, "digest md5")
        origin = _node(origin, "digest origin")
    return ConfigDigest(
        key,
        revision,
        md5,
        origin,
        _bool(committed, "digest committed"),
        _int(history, "digest history", 0, 2**64 - 1),
    )


def _have_items(raw: Any) -> tuple[tuple[ConfigKey, tuple[RevisionHash, ...]], ...]:
    if not isinstance(raw, list) or len(raw) > MAX_HAVE_KEYS:
        raise _bad(f"field 'items' must be an array of at most {MAX_HAVE_KEYS} [key, revisions]")
    items = []
    total = 0
    for item in raw:
        if not isinstance(item, list) or len(item) != 2 or not isinstance(item[1], list):
            raise _bad("a config_have item must be [key, [[revision, hash], ...]]")
        total += len(item[1])
        if total > MAX_HAVE_IDS:
            raise _bad(f"a config_have message holds at most {MAX_HAVE_IDS} revisions")
        items.append((parse_key(item[0]), tuple(_revision_hash(i) for i in item[1])))
    return tuple(items)


def _revision_hash(raw: Any) -> RevisionHash:
    if not isinstance(raw, list) or len(raw) != 2:
        raise _bad("a config_have revision must be [revision, hash]")
    revision, value = raw
    return (_int(revision, "config_have revision", 1, MAX_REVISION),
            _int(value, "config_have hash", 0, 2**64 - 1))  # fmt: skip


def _batch_items(
    raw: Any, sender: str, cap: int
) -> tuple[ConfigRecord | ConfigAck | ConfigCommit, ...]:
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_BATCH_ITEMS:
        raise _bad(f"field 'items' must be an array of 1..{MAX_BATCH_ITEMS} maps")
    items: list[ConfigRecord | ConfigAck | ConfigCommit] = []
    for i, item in enumerate(raw):
        op = item.get("op") if isinstance(item, dict) else None
        if op not in BATCH_OPS:
            raise _bad(f"item {i}: must be a map whose 'op' is one of {', '.join(BATCH_OPS)}")
        try:
            parsed = _parse(item, op, sender, cap)
        except RemoteProtocolError as exc:
            raise _bad(f"item {i} ({op}): {exc}") from None
        except ConfigRejected as exc:
            raise _bad(f"item {i} ({op}): {exc.message}") from None
        assert isinstance(parsed, ConfigRecord | ConfigAck | ConfigCommit)
        items.append(parsed)
    return tuple(items)


def _entries(raw: Any, cap: int, key: ConfigKey | None = None) -> tuple[ConfigEntry, ...]:
    if not isinstance(raw, list):
        raise _bad("field 'entries' must be an array")
    return tuple(parse_entry(e, cap, key) for e in raw)


def _node(value: Any, name: str) -> str:
    if (
        type(value) is not str
        or not 0 < len(value) <= limits.MAX_NODE_ID_LEN
        or not value.isprintable()
    ):
        raise _bad(f"field '{name}' must be a node id of 1..{limits.MAX_NODE_ID_LEN} printable "
                   "characters")  # fmt: skip
    return value


def _md5(value: Any, name: str) -> str:
    if type(value) is not str or _MD5_RE.match(value) is None:
        raise _bad(f"field '{name}' must be 32 lowercase hex digits")
    return value


MAX_ASK = 2**31 - 1  # a node's catch-up number (config_sync's ask)


def _ask(value: Any) -> int:
    return 0 if value is None else _int(value, "ask", 1, MAX_ASK)


def _revision(value: Any, name: str) -> int:
    return _int(value, name, 1, MAX_REVISION)


def _int(value: Any, name: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise _bad(f"field '{name}' must be an integer in {low}..{high}")
    return value


def _bool(value: Any, name: str) -> bool:
    if type(value) is not bool:
        raise _bad(f"field '{name}' must be true or false")
    return value


def _flag(msg: dict[str, Any], name: str) -> bool:
    """An optional boolean field (absent or nil: False)."""
    value = msg.get(name)
    return False if value is None else _bool(value, name)


def _bad(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(message, ErrorCode.MALFORMED)
