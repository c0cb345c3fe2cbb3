"""Size and range limits for everything that arrives from the network.

Two tiers: ``MAX_FRAME_BYTES`` is enforced by ZeroMQ itself (``ZMQ_MAXMSGSIZE``:
the connection of a sender that exceeds it is dropped, no reply is possible);
everything below it is checked by :mod:`meshreg.wire.messages` and answered
with an error reply that names the limit.
"""

from __future__ import annotations

PROTOCOL_VERSION = 1

MAX_BODY_BYTES = 64 * 1024  # bytes; larger client request bodies get TOO_LARGE
MAX_FRAME_BYTES = 4 * MAX_BODY_BYTES  # bytes; per frame on the client port, by libzmq
MAX_PEER_BODY_BYTES = 8 * 1024 * 1024  # bytes; node-to-node requests (peer port only)
MAX_PEER_REPLY_BYTES = 1024 * 1024 * 1024  # bytes; a peer's reply (digest page, reconcile)
MAX_ENVELOPE_FRAMES = 16  # routing frames before the empty delimiter

MAX_NAMESPACE_LEN = 64  # chars
MAX_GROUP_LEN = 128  # chars
MAX_SERVICE_LEN = 256  # chars
MAX_CLUSTER_LEN = 64  # chars
MAX_HOST_LEN = 253  # chars; a DNS name's maximum
MAX_WEIGHT = 10000.0  # Nacos's upper bound, so weights carry over unchanged
MAX_METADATA_ENTRIES = 64
MAX_METADATA_KEY_LEN = 128  # chars
MAX_METADATA_VALUE_LEN = 1024  # chars
MAX_METADATA_CHARS = 16 * 1024  # sum of key and value lengths, chars
MAX_REQUEST_ID = 2**64 - 1
DEFAULT_SERVICES_PAGE = 1000  # services per ``services`` reply when not asked (~50 KB)
MAX_SERVICES_PAGE = 10_000  # services per ``services`` reply at most (~500 KB, O(page) cost)
