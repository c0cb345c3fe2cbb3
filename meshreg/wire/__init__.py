"""The one place where bytes are built and parsed (frames <-> messages).

Everything here is pure: no sockets.  Validation of untrusted input lives here
so that the core only ever sees well-formed messages.
"""

from meshreg.wire.limits import PROTOCOL_VERSION

__all__ = ["PROTOCOL_VERSION"]
