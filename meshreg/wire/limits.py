"""Size and range limits for everything that arrives from the network.

Two tiers: ``MAX_FRAME_BYTES`` is enforced by ZeroMQ itself (``ZMQ_MAXMSGSIZE``:
the connection of a sender that exceeds it is dropped, no reply is possible);
everything below it is checked by :mod:`meshreg.wire.messages` and answered
with an error reply that names the limit.
"""

from __future__ import annotations

# Defined below the wire (core/versions: the stamp format; model: metadata), re-exported
# here so every limit is read from one place; wire depends on core, never the reverse.
from meshreg.core.requests import DEFAULT_NAMESPACES_PAGE as DEFAULT_NAMESPACES_PAGE
from meshreg.core.requests import DEFAULT_SERVICES_PAGE as DEFAULT_SERVICES_PAGE
from meshreg.core.versions import MAX_CLOCK_AHEAD as MAX_CLOCK_AHEAD
from meshreg.core.versions import MAX_STAMP as MAX_STAMP
from meshreg.model import MAX_METADATA_CHARS as MAX_METADATA_CHARS

PROTOCOL_VERSION = 1

MAX_BODY_BYTES = 64 * 1024  # bytes; larger client request bodies get TOO_LARGE
MAX_FRAME_BYTES = 4 * MAX_BODY_BYTES  # bytes; per frame on the client port, by libzmq
MAX_PEER_BODY_BYTES = 8 * 1024 * 1024  # bytes; node-to-node requests (peer port only)
MAX_PEER_REPLY_BYTES = 1024 * 1024 * 1024  # bytes; a peer's reply (digest page, reconcile)
# The caller says which plane a body came from (decode_body's max_bytes); nothing in a
# body does.
MAX_ENVELOPE_FRAMES = 16  # routing frames before the empty delimiter
# bytes per frame before a message's last (a routing id: libzmq's are at most 255 bytes):
# larger, the message is refused as it is received, uncopied (review52 F1: 15 frames of
# 2 MiB before the delimiter made each ping cost 30 ms and a 30 MB reply)
MAX_ROUTING_FRAME_BYTES = 255

MAX_NAMESPACE_LEN = 64  # chars
MAX_GROUP_LEN = 128  # chars
MAX_SERVICE_LEN = 256  # chars
MAX_CLUSTER_LEN = 64  # chars
MAX_HOST_LEN = 253  # chars; a DNS name's maximum
MAX_WEIGHT = 10000.0  # Nacos's upper bound, so weights carry over unchanged
MAX_METADATA_ENTRIES = 64
MAX_METADATA_KEY_LEN = 128  # chars
MAX_METADATA_VALUE_LEN = 1024  # chars
# MAX_METADATA_CHARS (model): 16384 chars, the sum of key and value lengths
MAX_REQUEST_ID = 2**64 - 1
MAX_BATCH_REGISTER = 1000  # entries per register_batch (within MAX_ARRAY_LEN and the 64 KiB
# body: ~100 bytes an entry; the Python client sends at most 256, or 48 KiB)
MAX_REVISIONS_CHECK = 1000  # entries per ``revisions`` request (the Python client sends at
# most 500, or 48 KiB: names are up to 128 + 256 characters)
MAX_NAMESPACES_PAGE = 10_000  # namespaces per ``namespaces`` reply at most (~1.5 MB)
MAX_SERVICES_PAGE = 10_000  # services per ``services`` reply at most (~500 KB, O(page) cost)
MAX_NODE_ID_LEN = 256  # chars; a node id in peer messages (printable, no control chars)
MAX_ADDRESS_LEN = 300  # chars; a node's host:port in its beacons

# Structure of a decoded body, bounded by the decoder itself before any validation
# (msgpack.unpackb's max_*_len), so no body decodes into more than its limits allow:
# every value takes at least one byte, so a body decodes to at most its byte size in
# objects (measured worst case: 72 bytes of memory per byte of a body of empty maps).
MAX_STR_BYTES = MAX_BODY_BYTES  # bytes per string (or bin/ext), on either plane: no value
# a client may send is longer (strings decode 1:1 into memory: this bounds single values
# of peer bodies, and keeps unknown fields of newer clients working)
MAX_MAP_ENTRIES = 1024  # entries per map: metadata has at most 64, a request ~15 keys
MAX_ARRAY_LEN = 1024  # entries per array in a client body (no client op sends one today)
MAX_PEER_ENTRIES = 100_000  # instances + tombstones in one delta or reconcile; entries
# per array on the peer plane
MAX_PEER_CONTAINERS = 4 * MAX_PEER_ENTRIES  # maps + arrays in one peer body (an instance
# is two, itself and its metadata; a removal one): decoding stops past it, so a peer
# body of empty maps holds at most ~30 MB instead of 72 bytes per body byte
MAX_NESTING = 1024  # levels; msgpack's own decoder stack (deeper: MALFORMED). Validation
# never recurses into values, so depth costs no Python stack.

# Version stamps (core/versions): MAX_STAMP = 2**63 - 1, the largest stamp on the wire;
# MAX_CLOCK_AHEAD = 60.0 s, how far a stamp may be ahead of the receiver's wall clock.
