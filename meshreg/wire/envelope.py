"""ROUTER envelopes: ``[routing frames..., b"", body]``.

Requests carry the same envelope as a ZeroMQ REQ socket would add (an empty
delimiter before the body), so a client may use REQ or DEALER.  The reply
mirrors the request's envelope and swaps the body.
"""

from __future__ import annotations

from meshreg.errors import ErrorCode
from meshreg.wire import limits
from meshreg.wire.messages import RequestRejected


def split_envelope(frames: list[bytes]) -> tuple[list[bytes], bytes]:
    """Split ROUTER-received ``frames`` into (envelope, body).

    The envelope includes the empty delimiter, ready to prefix the reply.
    Raises :class:`RequestRejected` (MALFORMED) for a missing delimiter, no
    body or extra frames; ``routable_envelope`` then gives where to reply.
    """
    n = len(frames)
    # Fast path: one routing id from a directly connected DEALER/REQ.
    if n == 3 and not frames[1]:
        return frames[:2], frames[2]
    try:
        delim = frames.index(b"", 1)
    except ValueError:
        raise RequestRejected(
            ErrorCode.MALFORMED,
            "request has no empty delimiter frame; send [b'', body] (what REQ sockets do)",
        ) from None
    if delim > limits.MAX_ENVELOPE_FRAMES:
        raise RequestRejected(ErrorCode.MALFORMED, "too many routing frames before the delimiter")
    if n != delim + 2:
        raise RequestRejected(
            ErrorCode.MALFORMED,
            f"request must have exactly one body frame after the delimiter, got {n - delim - 1}",
        )
    return frames[: delim + 1], frames[delim + 1]


def routable_envelope(frames: list[bytes]) -> list[bytes]:
    """Best-effort envelope to answer a malformed request: its sender's id."""
    return [frames[0], b""]
