"""What every request body passes, on every plane: the header check and the meaning of a
decoder failure (shared by wire/messages and wire/config_messages)."""

from __future__ import annotations

from typing import Any

import msgpack

from meshreg.errors import ErrorCode, RemoteProtocolError, RequestRejected
from meshreg.wire import limits


def _decode_error(exc: Exception) -> RequestRejected:
    """What a decoder failure means on the wire (a RequestRejected for decode_body)."""
    if isinstance(exc, RequestRejected):
        return exc
    if isinstance(exc, RemoteProtocolError):  # the container budget
        return RequestRejected(exc.code, exc.message)
    if isinstance(exc, msgpack.StackError):
        return RequestRejected(
            ErrorCode.MALFORMED, f"body is nested deeper than {limits.MAX_NESTING} levels"
        )
    if isinstance(exc, ValueError) and "exceeds max_" in str(exc):
        # msgpack: "N exceeds max_str_len(M)"
        return RequestRejected(
            ErrorCode.TOO_LARGE,
            f"body holds a value beyond the decoder's limits ({exc}): strings "
            f"{limits.MAX_STR_BYTES} bytes, maps {limits.MAX_MAP_ENTRIES} entries, arrays "
            f"{limits.MAX_ARRAY_LEN} (client) or {limits.MAX_PEER_ENTRIES} (peer)",
        )
    if isinstance(exc, ValueError) and "not allowed for map key" in str(exc):
        kind = str(exc).split(" ", 1)[0]  # "int is not allowed for map key ..."
        return RequestRejected(
            ErrorCode.MALFORMED, f"a map key is {kind}: every map key must be a string"
        )
    # msgpack raises many types (ExtraData, FormatError, ...); all mean the same here
    return RequestRejected(
        ErrorCode.MALFORMED, f"body is not one valid msgpack value ({type(exc).__name__})"
    )


def _header(msg: Any) -> int:
    """The request id of a body map, after the checks every request passes."""
    if not isinstance(msg, dict):
        raise RequestRejected(ErrorCode.MALFORMED, "body must be a msgpack map")
    req_id = msg.get("id")
    if type(req_id) is not int or not 0 <= req_id <= limits.MAX_REQUEST_ID:
        raise RequestRejected(
            ErrorCode.INVALID_ARGUMENT, "field 'id' must be an unsigned 64-bit integer"
        )
    version = msg.get("v")
    if version != limits.PROTOCOL_VERSION or type(version) is not int:
        said = "missing" if version is None else f"{shown(version)} is not supported"
        raise RequestRejected(
            ErrorCode.UNSUPPORTED_VERSION,
            f"protocol version (field 'v') {said}; this node speaks v={limits.PROTOCOL_VERSION}",
            req_id,
        )
    return req_id


def shown(value: Any) -> str:
    """A value a client sent, in msgpack's terms rather than Python's (an error message
    read by a client in any language): ``nil``, ``true``, ``the float 2.0``, ``"text"``."""
    if value is None:
        return "nil"
    if value is True or value is False:
        return "true" if value else "false"
    if type(value) is int:
        return str(value)
    if type(value) is float:
        return f"the float {value!r}"[:48]
    if type(value) is str:
        return '"' + value[:32] + ('..."' if len(value) > 32 else '"')
    if type(value) is bytes:
        return f"a bin of {len(value)} bytes"
    return "a map" if isinstance(value, dict) else "an array"


def not_utf8_error(body: bytes) -> RequestRejected:
    """A client body whose msgpack is sound but a ``str`` holds bytes that are not UTF-8:
    INVALID_ARGUMENT with the request's id and op, naming the field (review28 F1: it was
    MALFORMED with id 0, which a pipelining client cannot match).  The slow path only: the
    body is decoded again, keeping the bad bytes as surrogates to find them."""
    try:
        msg = msgpack.unpackb(
            body,
            raw=False,
            strict_map_key=True,
            max_map_len=limits.MAX_MAP_ENTRIES,
            max_array_len=limits.MAX_ARRAY_LEN,
            unicode_errors="surrogateescape",
        )
    except Exception as exc:  # not only that: whatever else is wrong with it
        return _decode_error(exc)
    if type(msg) is not dict:
        return _decode_error(ValueError("not a map"))
    req_id = msg.get("id")
    if type(req_id) is not int or not 0 <= req_id <= limits.MAX_REQUEST_ID:
        req_id = 0
    op = msg.get("op")
    op = op if type(op) is str and _is_utf8(op) else None
    where = _bad_text(msg, "") or "a string"
    return RequestRejected(
        ErrorCode.INVALID_ARGUMENT,
        f"{op or 'request'}: {where} is not valid UTF-8: every msgpack str must hold UTF-8 "
        "(send text as UTF-8; a config's content may also go as bin holding UTF-8)",
        req_id,
        op,
    )


def _is_utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _bad_text(value: Any, path: str) -> str | None:
    """Where the first string holding undecodable bytes is (``field 'a.b[2]'``)."""
    if type(value) is str:
        return None if _is_utf8(value) else f"field '{path or '?'}'"
    if type(value) is dict:
        for k, v in value.items():
            if not _is_utf8(k):
                return f"a key of field '{path}'" if path else "a field name"
            found = _bad_text(v, f"{path}.{k}" if path else k)
            if found:
                return found
    elif type(value) is list:
        for i, v in enumerate(value):
            found = _bad_text(v, f"{path}[{i}]")
            if found:
                return found
    return None
