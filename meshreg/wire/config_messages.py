"""The configuration center's client requests: decoding and validation.

The planned ``config_*`` operations (docs/CONFIG.md, "Wire operations"): one msgpack map
per request, with the common fields ``v``, ``id`` and ``op`` (docs/PROTOCOL.md 1.5) and the
fields below, named as in the CLI and the Python client.  ``parse_config_message`` turns
an untrusted decoded body into one of the frozen requests below or raises
:class:`~meshreg.wire.messages.RequestRejected` naming the field; unknown extra keys are
ignored, a nil field is absent.

The ops are ``CONFIG_OPS`` (part of ``CLIENT_OPS``); the node serves them in
runtime/config_plane.  A config body may be far above the client plane's 64 KiB
(``MAX_BODY_BYTES``): ``decode_config_body`` bounds it by the node's content cap plus
``CONFIG_BODY_OVERHEAD`` instead (only for config ops: any other op above 64 KiB is still
TOO_LARGE), and the client socket's frame limit is raised to match
(``config_frame_bytes``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import msgpack

from meshreg.configcenter.model import (
    DEFAULT_HISTORY_PAGE,
    DEFAULT_LIST_PAGE,
    HARD_MAX_CONTENT_BYTES,
    MAX_GROUP_LEN,
    MAX_HISTORY_PAGE,
    MAX_LIST_PAGE,
    MAX_NAMESPACE_LEN,
    ConfigKey,
    ConfigRejected,
    GrayRule,
    check_config_key,
    check_config_name,
    check_content,
    check_description,
    check_gray_rule,
    check_new_config_key,
    check_request_id,
    check_revision_floor,
    check_tags,
    check_type,
    known_config_key,
    pattern_regex,
)
from meshreg.errors import ErrorCode, RequestRejected
from meshreg.model import DEFAULT_NAMESPACE
from meshreg.wire import limits
from meshreg.wire.bodies import _decode_error, _header, not_utf8_error, shown

if TYPE_CHECKING:  # the node's type: imported where it is built (as_config_write)
    from meshreg.configcenter.replication import ConfigWrite

CONFIG_BODY_OVERHEAD = 64 * 1024  # bytes; a config body's fields other than the content
MAX_LABELS = 32  # a client's labels (gray selection) per request
MAX_LABEL_LEN = 256  # chars per label key or value
MAX_REVISION = 2**63 - 1  # revisions are signed 64-bit on disk and on the wire
_MD5_RE = re.compile(r"[0-9a-f]{32}")  # an md5 as the node sends it (content_md5)


@dataclass(frozen=True, slots=True)
class PublishConfig:
    req_id: int
    key: ConfigKey
    content: str
    type: str | None  # None: the type the data id has (text if new), decided by its owner
    if_revision: int | None
    desc: str
    tags: tuple[tuple[str, str], ...]
    request_id: str = ""  # '' : none given (every write: PROTOCOL.md 2.15)
    resend: bool = False  # an earlier attempt was sent (PROTOCOL.md 2.15)
    deadline: float | None = None  # wall s after which it is void (None: none given)
    revision_floor: int = 0  # the revision made is at least this (an import's; 0: none)
    echo: bool = True  # False: the result leaves out the content the client sent
    op = "config_publish"


@dataclass(frozen=True, slots=True)
class GetConfig:
    """``revision``: that revision (None: the current one); ``min_revision``: the highest
    revision the client has seen (an older node answers UNAVAILABLE); ``labels``: the
    client's labels, for gray selection (its address comes from the connection)."""

    req_id: int
    key: ConfigKey
    revision: int | None
    min_revision: int
    labels: tuple[tuple[str, str], ...]
    op = "config_get"


@dataclass(frozen=True, slots=True)
class DeleteConfig:
    req_id: int
    key: ConfigKey
    if_revision: int | None
    request_id: str = ""
    resend: bool = False  # an earlier attempt was sent (PROTOCOL.md 2.15)
    deadline: float | None = None  # wall s after which it is void (None: none given)
    revision_floor: int = 0  # as PublishConfig's
    op = "config_delete"


@dataclass(frozen=True, slots=True)
class ListConfigs:
    req_id: int
    namespace: str
    group: str | None  # None: every group of the namespace
    pattern: str  # * and ? on the data id
    page_size: int
    cursor: str | None
    deleted: bool = False  # the deleted data ids (tombstones) too (an export's)
    op = "config_list"


@dataclass(frozen=True, slots=True)
class ConfigHistory:
    req_id: int
    key: ConfigKey
    page_size: int
    cursor: int | None  # the 'next_cursor' of the previous page: list below that revision
    op = "config_history"


@dataclass(frozen=True, slots=True)
class RollbackConfig:
    req_id: int
    key: ConfigKey
    revision: int
    if_revision: int | None
    request_id: str = ""
    resend: bool = False  # an earlier attempt was sent (PROTOCOL.md 2.15)
    deadline: float | None = None  # wall s after which it is void (None: none given)
    op = "config_rollback"


@dataclass(frozen=True, slots=True)
class ListenConfig:
    """Watch a data id: the node answers with the current version if ``revision`` (what the
    client holds; 0: nothing) is older, or, when the client sent ``md5`` (what it holds at
    that revision: the md5 of the content it was served, '' for a delete), if the version
    it would be served at that revision is another one; then pushes every change.
    ``md5`` None: not sent (an older client; the revision alone decides)."""

    req_id: int
    key: ConfigKey
    revision: int
    labels: tuple[tuple[str, str], ...]
    md5: str | None = None
    op = "config_listen"


@dataclass(frozen=True, slots=True)
class UnlistenConfig:
    req_id: int
    key: ConfigKey
    op = "config_unlisten"


@dataclass(frozen=True, slots=True)
class PublishGray:
    req_id: int
    key: ConfigKey
    content: str
    type: str | None  # None: the main version's type
    rule: GrayRule
    if_revision: int | None
    request_id: str = ""
    resend: bool = False  # an earlier attempt was sent (PROTOCOL.md 2.15)
    deadline: float | None = None  # wall s after which it is void (None: none given)
    echo: bool = True  # False: the result leaves out the gray content the client sent
    revision_floor: int = 0  # as PublishConfig's (an import's replayed gray step)
    op = "config_gray"


@dataclass(frozen=True, slots=True)
class PromoteGray:
    req_id: int
    key: ConfigKey
    if_revision: int | None
    request_id: str = ""
    resend: bool = False  # an earlier attempt was sent (PROTOCOL.md 2.15)
    deadline: float | None = None  # wall s after which it is void (None: none given)
    revision_floor: int = 0  # as PublishConfig's (an import's replayed promote)
    op = "config_promote"


@dataclass(frozen=True, slots=True)
class DropGray:
    req_id: int
    key: ConfigKey
    if_revision: int | None
    request_id: str = ""
    resend: bool = False  # an earlier attempt was sent (PROTOCOL.md 2.15)
    deadline: float | None = None  # wall s after which it is void (None: none given)
    revision_floor: int = 0  # as PublishConfig's (an import's replayed gray drop)
    op = "config_gray_drop"


@dataclass(frozen=True, slots=True)
class ForceConfigReady:
    """The operator's override of the ready gate on the node that receives it (a lone
    survivor: docs/CONFIG.md "The ready gate"); no fields, node-wide, admin."""

    req_id: int
    op = "config_force_ready"


ConfigRequest = (
    PublishConfig
    | GetConfig
    | DeleteConfig
    | ListConfigs
    | ConfigHistory
    | RollbackConfig
    | ListenConfig
    | UnlistenConfig
    | PublishGray
    | PromoteGray
    | DropGray
    | ForceConfigReady
)

CONFIG_OPS = (
    "config_publish",
    "config_get",
    "config_delete",
    "config_list",
    "config_history",
    "config_rollback",
    "config_listen",
    "config_unlisten",
    "config_gray",
    "config_promote",
    "config_gray_drop",
    "config_force_ready",  # node-wide (admin on everything): not a data id's op
)
CONFIG_WRITE_OPS = (
    "config_publish",
    "config_delete",
    "config_rollback",
    "config_gray",
    "config_promote",
    "config_gray_drop",
)


def decode_config_body(body: bytes, max_content_bytes: int = HARD_MAX_CONTENT_BYTES) -> Any:
    """msgpack-decode a config request body of at most the content cap plus overhead.

    Strings and bins are bounded by the body's limit (the content is the one large field;
    its own check, with the request id, names the content cap); maps and arrays by the
    client plane's limits.  TOO_LARGE beyond a limit, MALFORMED for
    bytes that are not one msgpack value.
    """
    max_bytes = max_content_bytes + CONFIG_BODY_OVERHEAD
    if len(body) > max_bytes:
        raise RequestRejected(
            ErrorCode.TOO_LARGE,
            f"config request body is {len(body)} bytes; the limit is {max_bytes} (the "
            f"content cap {max_content_bytes} + {CONFIG_BODY_OVERHEAD})",
        )
    try:
        return msgpack.unpackb(
            body,
            raw=False,
            strict_map_key=True,
            max_str_len=max_bytes,  # the content's own check names the cap (and the id)
            max_bin_len=max_bytes,
            max_ext_len=0,
            max_map_len=limits.MAX_MAP_ENTRIES,
            max_array_len=limits.MAX_ARRAY_LEN,
        )
    except UnicodeDecodeError:  # with the request's id and op (review30 F4: TOO_LARGE, id 0)
        raise not_utf8_error(body) from None
    except Exception as exc:
        raise _decode_error(exc) from None


def config_get_fields(msg: Any) -> tuple[int, ConfigKey, int] | None:
    """A plain ``config_get``'s ``(id, key, min_revision)``: the current version, no
    ``revision``, no ``labels``, names already validated once (``known_config_key``).

    The config-get fast path (like ``beat_fields`` for a beat): the same checks
    ``parse_config_message`` makes of these fields, without a request object.  None for
    anything else, which then takes the full parse and gets its precise error."""
    if type(msg) is not dict:
        return None
    try:
        if msg["op"] != "config_get":
            return None
        req_id = msg["id"]
        version = msg["v"]
        data_id = msg["data_id"]
    except KeyError:
        return None
    if (
        type(req_id) is not int
        or not 0 <= req_id <= _MAX_ID
        or type(version) is not int
        or version != _V
        or msg.get("revision") is not None
        or msg.get("labels") is not None
    ):
        return None
    least = msg.get("min_revision")
    if least is None:
        least = 0
    elif type(least) is not int or not 0 <= least <= MAX_REVISION:
        return None
    key = known_config_key(msg.get("namespace"), msg.get("group"), data_id)
    if key is None:
        return None
    return req_id, key, least


_MAX_ID, _V = limits.MAX_REQUEST_ID, limits.PROTOCOL_VERSION


def parse_config_request(
    body: bytes, max_content_bytes: int = HARD_MAX_CONTENT_BYTES
) -> ConfigRequest:
    return parse_config_message(decode_config_body(body, max_content_bytes), max_content_bytes)


def parse_config_message(
    msg: Any, max_content_bytes: int = HARD_MAX_CONTENT_BYTES
) -> ConfigRequest:
    """Validate an untrusted decoded config request (``CONFIG_OPS``)."""
    req_id = _header(msg)
    op = msg.get("op")
    if op not in CONFIG_OPS:
        shown = f"{op[:32]!r}" if isinstance(op, str) else type(op).__name__
        raise RequestRejected(
            ErrorCode.UNKNOWN_OP,
            f"unknown config op {shown}; known: {', '.join(CONFIG_OPS)}",
            req_id,
        )
    try:
        request = _parse(msg, req_id, op, max_content_bytes)
        if op in CONFIG_WRITE_OPS and msg.get("resend") is not None:
            request = replace(request, resend=_resend(msg))  # type: ignore[arg-type]
        if op in CONFIG_WRITE_OPS and msg.get("deadline") is not None:
            request = replace(request, deadline=_deadline(msg))  # type: ignore[arg-type]
        return request
    except ConfigRejected as exc:
        raise RequestRejected(exc.code, f"{op}: {exc.message}", req_id, op, exc.reason) from None


def _parse(msg: dict[str, Any], req_id: int, op: str, cap: int) -> ConfigRequest:
    if op == "config_force_ready":
        return ForceConfigReady(req_id)
    if op == "config_list":
        ns = msg.get("namespace")
        ns = check_config_name(DEFAULT_NAMESPACE if ns is None else ns, "namespace",
                               MAX_NAMESPACE_LEN)  # fmt: skip
        group = msg.get("group")
        if group is not None:
            check_config_name(group, "group", MAX_GROUP_LEN)
        pattern = msg.get("pattern")
        pattern = "*" if pattern is None else pattern
        pattern_regex(pattern)
        cursor = msg.get("cursor")
        if cursor is not None and (type(cursor) is not str or not 0 < len(cursor) <= 400):
            raise _invalid("field 'cursor' must be the 'next_cursor' of a config_list reply")
        page = _int(msg, "page_size", DEFAULT_LIST_PAGE, 1, MAX_LIST_PAGE)
        deleted = msg.get("deleted", False)
        if type(deleted) is not bool:
            raise _invalid(
                f"field 'deleted' must be true or false (got {type(deleted).__name__}): true "
                "lists the deleted data ids (tombstones) too"
            )
        return ListConfigs(req_id, ns, group, pattern, page, cursor, deleted)
    key = check_config_key(msg.get("namespace"), msg.get("group"), msg.get("data_id"))
    if op == "config_publish":
        return PublishConfig(
            req_id,
            check_new_config_key(key),
            check_content(_required(msg, "content"), cap),
            None if msg.get("type") is None else check_type(msg.get("type")),
            _if_revision(msg),
            check_description(msg.get("desc")),
            check_tags(msg.get("tags")),
            check_request_id(msg.get("request_id")),
            revision_floor=check_revision_floor(msg.get("revision_floor")),
            echo=_echo(msg),
        )
    if op == "config_get":
        revision = _optional_revision(msg, "revision")
        return GetConfig(req_id, key, revision, _int(msg, "min_revision", 0, 0, MAX_REVISION),
                         _labels(msg))  # fmt: skip
    if op == "config_delete":
        return DeleteConfig(
            req_id,
            key,
            _if_revision(msg),
            check_request_id(msg.get("request_id")),
            revision_floor=check_revision_floor(msg.get("revision_floor")),
        )
    if op == "config_history":
        page = _int(msg, "page_size", DEFAULT_HISTORY_PAGE, 1, MAX_HISTORY_PAGE)
        return ConfigHistory(req_id, key, page, _optional_revision(msg, "cursor"))
    if op == "config_rollback":
        revision = _optional_revision(msg, "revision")
        if revision is None:
            raise _invalid("field 'revision' is required: the revision to roll back to")
        return RollbackConfig(
            req_id, key, revision, _if_revision(msg), check_request_id(msg.get("request_id"))
        )
    if op == "config_listen":
        revision = _int(msg, "revision", 0, 0, MAX_REVISION)
        return ListenConfig(req_id, key, revision, _labels(msg), _held_md5(msg))
    if op == "config_unlisten":
        return UnlistenConfig(req_id, key)
    if op == "config_gray":
        content = check_content(_required(msg, "content"), cap)
        kind = None if msg.get("type") is None else check_type(msg.get("type"))
        rule = check_gray_rule(msg.get("labels"), msg.get("clients"))
        floor = check_revision_floor(msg.get("revision_floor"))
        return PublishGray(req_id, key, content, kind, rule, _if_revision(msg),
                           check_request_id(msg.get("request_id")), echo=_echo(msg),
                           revision_floor=floor)  # fmt: skip
    kind_of = PromoteGray if op == "config_promote" else DropGray
    return kind_of(req_id, key, _if_revision(msg), check_request_id(msg.get("request_id")),
                   revision_floor=check_revision_floor(msg.get("revision_floor")))  # fmt: skip


def as_config_write(request: ConfigRequest, reply_to: Any, by: str = "") -> ConfigWrite:
    """The replication layer's command for a write request (``CONFIG_WRITE_OPS``)."""
    # Here, not at the top: the client parses its config requests with this module (to
    # check them before they leave) and should not load replication (bench/startup.py).
    from meshreg.configcenter.replication import ConfigWrite

    args: dict[str, Any] = {"by": by}
    floor = getattr(request, "revision_floor", 0)  # (a rollback has none)
    if floor:
        args["revision_floor"] = floor
    if isinstance(request, PublishConfig):
        op = "publish"
        args.update(content=request.content, type=request.type, desc=request.desc,
                    tags=dict(request.tags))  # fmt: skip
    elif isinstance(request, DeleteConfig):
        op = "delete"
    elif isinstance(request, RollbackConfig):
        op, args["revision"] = "rollback", request.revision
    elif isinstance(request, PublishGray):
        op = "gray"
        rule = request.rule
        args.update(content=request.content, type=request.type, labels=dict(rule.labels),
                    clients=sorted(rule.addresses))  # fmt: skip
    elif isinstance(request, PromoteGray):
        op = "promote"
    elif isinstance(request, DropGray):
        op = "gray_drop"
    else:
        raise TypeError(f"{request.op} is not a write")
    return ConfigWrite(
        reply_to, op, request.key, args, request.if_revision, request_id=request.request_id,
        resend=request.resend, deadline=request.deadline,
    )  # fmt: skip


MAX_DEADLINE_MS = 2**53  # as a registry write's (wire/messages): a JSON number keeps it


def _deadline(msg: dict[str, Any]) -> float:
    """A write's optional ``deadline``: the client's wall clock, in milliseconds since the
    Unix epoch, after which no node may apply it (PROTOCOL.md 2.15: a write that waited
    in a stopped owner's socket would otherwise land on top of the client's later ones)."""
    value = msg.get("deadline")
    if type(value) is not int or not 0 < value < MAX_DEADLINE_MS:
        raise _invalid(
            "field 'deadline' must be an integer of milliseconds since the Unix epoch "
            f"(0 < deadline < 2^53), got {shown(value)}"
        )
    return value / 1000.0


def _resend(msg: dict[str, Any]) -> bool:
    """A write's optional ``resend`` flag: true when the client sent it before (the owner
    then asks a majority for its request id before applying it: PROTOCOL.md 2.15)."""
    value = msg.get("resend")
    if type(value) is not bool:
        raise _invalid(
            f"field 'resend' must be true or false (got {type(value).__name__}): true when "
            "this write was sent before with the same request_id"
        )
    if value and not msg.get("request_id"):
        raise _invalid("field 'resend' needs a 'request_id' (the id the earlier attempt had)")
    return value


def _invalid(message: str) -> ConfigRejected:
    return ConfigRejected(ErrorCode.INVALID_ARGUMENT, message)


def _echo(msg: dict[str, Any]) -> bool:
    """``echo`` (publish, gray): false asks for a result without the content the client
    sent (it has it: a 1 MiB publish need not cost 1 MiB back; PROTOCOL.md 2.16)."""
    value = msg.get("echo", True)
    if type(value) is not bool:
        raise _invalid(
            f"field 'echo' must be true or false (got {type(value).__name__}): false leaves "
            "the content you sent out of the result"
        )
    return value


def _required(msg: dict[str, Any], name: str) -> Any:
    value = msg.get(name)
    if value is None:
        raise _invalid(f"field '{name}' is required")
    return value


def _int(msg: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = msg.get(name)
    if value is None:
        return default
    if type(value) is not int or not low <= value <= high:
        raise _invalid(f"field '{name}' must be an integer in {low}..{high}")
    return value


def _optional_revision(msg: dict[str, Any], name: str) -> int | None:
    if msg.get(name) is None:
        return None
    return _int(msg, name, 0, 1, MAX_REVISION)


def _if_revision(msg: dict[str, Any]) -> int | None:
    """The compare-and-set: 0 = must not exist; N = must be at revision N; nil = none."""
    if msg.get("if_revision") is None:
        return None
    return _int(msg, "if_revision", 0, 0, MAX_REVISION)


def _held_md5(msg: dict[str, Any]) -> str | None:
    """``config_listen``'s ``md5``: nil (not sent), '' (a delete or nothing held at the
    revision) or 32 lowercase hex digits (the md5 of the content held)."""
    md5 = msg.get("md5")
    if md5 is None or md5 == "":
        return md5
    if type(md5) is not str or _MD5_RE.fullmatch(md5) is None:
        raise _invalid(
            "field 'md5' must be the md5 of the content held at 'revision' (32 lowercase hex "
            "digits, as the node sent it), '' for a delete, or nil"
        )
    return md5


def _labels(msg: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    labels = msg.get("labels")
    if labels is None:
        return ()
    if not isinstance(labels, dict) or len(labels) > MAX_LABELS:
        raise _invalid(f"field 'labels' must be a map of at most {MAX_LABELS} string pairs")
    for k, v in labels.items():
        if type(k) is not str or type(v) is not str or not k:
            raise _invalid("field 'labels' must be a map of string to string")
        if len(k) > MAX_LABEL_LEN or len(v) > MAX_LABEL_LEN:
            raise _invalid(f"a label key or value is longer than {MAX_LABEL_LEN} characters")
    return tuple(sorted(labels.items()))
