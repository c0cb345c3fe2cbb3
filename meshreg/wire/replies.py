"""Reply bodies: ``{"v": 1, "id": N, "ok": true, "result": ...}`` or
``{"v": 1, "id": N, "ok": false, "error": {"code": C, "name": S, "message": M}}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack

from meshreg.errors import ErrorCode, RemoteProtocolError
from meshreg.wire import limits

# The beat reply is the hot path: its body is a fixed prefix, the packed id and
# a fixed suffix.  Same bytes as msgpack.packb({"v":1,"id":N,"ok":True,"result":None}).
_OK_PREFIX: bytes = b"\x84\xa1v" + msgpack.packb(limits.PROTOCOL_VERSION) + b"\xa2id"
_OK_NONE_SUFFIX = b"\xa2ok\xc3\xa6result\xc0"
_OK_RESULT = b"\xa2ok\xc3\xa6result"


def _to_wire(obj: Any) -> Any:
    """msgpack's ``default``: the core's types that travel in replies (its results,
    core/results: wire/result_maps) and peer calls (a reconcile's payloads), as their
    wire maps; nothing else is encodable."""
    encode = _ENCODERS.get(type(obj)) or _encoder(type(obj))
    return encode(obj)


# type -> its wire map, filled on the first typed object encoded.  Not imported at the top:
# a client encodes plain maps only, and loading the node's result and peer types (and the
# core modules under them) cost every client and CLI process its start-up
# (bench/startup.py).  A dict, not an import in ``_to_wire``: that costs microseconds a call.
_ENCODERS: dict[type, Callable[[Any], Any]] = {}
# type -> its whole result packed (bytes), where that is faster than through its map (a
# large service's instances: wire/result_maps ``RESULT_PACKERS``); filled with _ENCODERS
_PACKERS: dict[type, Callable[[Any], bytes]] = {}


def _encoder(kind: type) -> Callable[[Any], Any]:
    from meshreg.core.cluster_messages import ServicePayload
    from meshreg.wire.peer import payload_to_wire
    from meshreg.wire.result_maps import RESULT_MAPS, RESULT_PACKERS

    if not _ENCODERS:
        _ENCODERS.update(RESULT_MAPS)
        _PACKERS.update(RESULT_PACKERS)
        _ENCODERS[ServicePayload] = payload_to_wire
    encode = _ENCODERS.get(kind)
    if encode is None:
        raise TypeError(f"cannot encode a {kind.__name__} in a reply or request")
    return encode


def _packb(obj: Any) -> bytes:
    """msgpack, with the core's types encoded by ``_to_wire``."""
    packed: bytes = msgpack.packb(obj, default=_to_wire)
    return packed


def _packed_id(req_id: int) -> bytes:
    """``msgpack.packb(req_id)`` for an id in 0..2^64-1, without making a Packer."""
    if req_id < 0x80:
        return _FIXINTS[req_id]
    if req_id < 0x10000:
        return (
            b"\xcc" + req_id.to_bytes(1, "big")
            if req_id < 0x100
            else b"\xcd" + req_id.to_bytes(2, "big")
        )
    if req_id < 0x100000000:
        return b"\xce" + req_id.to_bytes(4, "big")
    return b"\xcf" + req_id.to_bytes(8, "big")


_FIXINTS = [bytes((i,)) for i in range(0x80)]
_OK_FIXINT = [_OK_PREFIX + i + _OK_NONE_SUFFIX for i in _FIXINTS]  # whole replies, ids < 128


def encode_ok(req_id: int, result: Any = None) -> bytes:
    """Encode a success reply."""
    if result is None:
        if type(req_id) is int and 0 <= req_id < 2**64:  # every request's id (wire/messages)
            return _OK_PREFIX + _packed_id(req_id) + _OK_NONE_SUFFIX
        return _OK_PREFIX + _packb(req_id) + _OK_NONE_SUFFIX
    packer = _PACKERS.get(type(result))
    if packer is not None:
        return encode_ok_packed(req_id, packer(result))
    return _packb({"v": limits.PROTOCOL_VERSION, "id": req_id, "ok": True, "result": result})


def encode_ok_packed(req_id: int, packed_result: bytes) -> bytes:
    """``encode_ok(req_id, result)`` from ``msgpack.packb(result)`` (same bytes): a
    result packed once can answer many requests (a config get's cached reply)."""
    packed_id = (
        _packed_id(req_id) if type(req_id) is int and 0 <= req_id < 2**64 else _packb(req_id)
    )
    return _OK_PREFIX + packed_id + _OK_RESULT + packed_result


def beat_ok(req_id: int) -> bytes:
    """``encode_ok(req_id, None)`` for an id ``beat_fields`` checked (an int in
    0..2^64-1): the heartbeat's reply, with no check repeated."""
    if req_id < 0x80:
        return _OK_FIXINT[req_id]
    return _OK_PREFIX + _packed_id(req_id) + _OK_NONE_SUFFIX


def encode_error(
    req_id: int,
    code: ErrorCode,
    message: str,
    unwritten: bool = False,
    revision: int | None = None,
    current: int | None = None,
    retry_after: float | None = None,
    rate: int | None = None,
) -> bytes:
    """Encode an error reply; ``unwritten``: a config write refused before anything was
    written (``error.written`` false: retry anywhere, no request id needed); ``revision``:
    a config read's NOT_FOUND of a deleted data id, the delete's revision (``error.revision``:
    the client's floor for later reads, review38 F1); ``current``: a CAS's CONFLICT, the
    current revision, 0 included (``error.current``; not in ``revision``, whose 0 older
    clients refuse); ``retry_after``: a rate limit's RESOURCE_EXHAUSTED, the seconds until
    the same request would be taken (``error.retry_after``); ``rate``: the write rate's, the
    limit in writes per second (``error.rate``: a client sizes a re-registration by it)."""
    error: dict[str, Any] = {"code": int(code), "name": code.name, "message": message}
    if unwritten:
        error["written"] = False
    if revision is not None:
        error["revision"] = revision
    if current is not None:
        error["current"] = current
    if retry_after is not None:
        error["retry_after"] = round(retry_after, 3)
    if rate is not None:
        error["rate"] = rate
    return _packb({"v": limits.PROTOCOL_VERSION, "id": req_id, "ok": False, "error": error})


def decode_reply(body: bytes) -> dict[str, Any]:
    """Decode and sanity-check a reply (client side); returns the map."""
    try:
        msg = msgpack.unpackb(body, raw=False, strict_map_key=False)
    except Exception as exc:
        raise RemoteProtocolError(f"reply is not valid msgpack ({type(exc).__name__})") from None
    if not isinstance(msg, dict) or type(msg.get("id")) is not int or "ok" not in msg:
        raise RemoteProtocolError("reply is not a map with 'id' and 'ok'")
    if not msg["ok"]:
        err = msg.get("error")
        if not isinstance(err, dict) or type(err.get("code")) is not int:
            raise RemoteProtocolError("error reply has no error code")
    return msg


def with_deadline(msg: dict[str, Any], deadline: float) -> bytes:
    """The body of the request ``msg`` (decoded, validated) with its ``deadline``
    (PROTOCOL.md 2.1) set to ``deadline`` (wall clock, s; rounded down to the
    millisecond): the copy of a write a node forwards, void once that node stopped
    waiting for it (runtime/node)."""
    return _packb({**msg, "deadline": int(deadline * 1000)})


def encode_request(op: str, req_id: int, **fields: Any) -> bytes:
    """Encode a request body (client side)."""
    body = {"v": limits.PROTOCOL_VERSION, "id": req_id, "op": op}
    body.update(fields)
    return _packb(body)
