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
        raise RequestRejected(
            ErrorCode.UNSUPPORTED_VERSION,
            f"protocol version {version!r} is not supported; this node speaks "
            f"v={limits.PROTOCOL_VERSION}",
            req_id,
        )
    return req_id
