"""Sealed ``services`` cursors: a position a client may resume from but not read.

A ``services`` page filtered by the ACL ends at the last service it examined, which the
client may not be allowed to read; its plain cursor (``group/service``) named it, and a
client paging with ``page_size`` 1 walked every name of the namespace (review23 F5).
Such a cursor is sealed: ``~`` and the base64url of a nonce, the name XORed with a
keystream, and a tag, both BLAKE2b keyed by a secret the node draws at start.  Only the
node that sealed it, in the same run, opens it; elsewhere the client lists again from the
first page (the error says so).  Cursors a client may read stay plain.  The name is
padded (NULs, which no name holds) to the longest ``group/service``, so a sealed cursor's
length does not say how long the name it hides is (review83 F1).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from meshreg.wire import limits

SEALED_PREFIX = "~"
NONCE_BYTES = 12
TAG_BYTES = 16
PADDED_BYTES = limits.MAX_GROUP_LEN + 1 + limits.MAX_SERVICE_LEN  # names are ASCII


class CursorSeal:
    """Seal and open cursors under one random key (one per node run)."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)

    def _stream(self, nonce: bytes, size: int) -> bytes:
        blocks = []
        for i in range(0, size, 64):
            counter = (i // 64).to_bytes(4, "big")
            blocks.append(
                hashlib.blake2b(nonce + counter, key=self._key, person=b"cursor").digest()
            )
        return b"".join(blocks)[:size]

    def _tag(self, nonce: bytes, sealed: bytes) -> bytes:
        return hashlib.blake2b(
            nonce + sealed, key=self._key, digest_size=TAG_BYTES, person=b"cursor-tag"
        ).digest()

    def seal(self, cursor: str) -> str:
        nonce = secrets.token_bytes(NONCE_BYTES)
        plain = cursor.encode().ljust(PADDED_BYTES, b"\0")
        sealed = bytes(a ^ b for a, b in zip(plain, self._stream(nonce, len(plain)), strict=True))
        token = base64.urlsafe_b64encode(nonce + sealed + self._tag(nonce, sealed))
        return SEALED_PREFIX + token.rstrip(b"=").decode()

    def open(self, token: str) -> str | None:
        """The cursor sealed in ``token`` (None: not sealed here, or altered)."""
        body = token[len(SEALED_PREFIX) :]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(raw) < NONCE_BYTES + TAG_BYTES:
            return None
        nonce, sealed, tag = raw[:NONCE_BYTES], raw[NONCE_BYTES:-TAG_BYTES], raw[-TAG_BYTES:]
        if not hmac.compare_digest(tag, self._tag(nonce, sealed)):
            return None
        plain = bytes(a ^ b for a, b in zip(sealed, self._stream(nonce, len(sealed)), strict=True))
        try:
            return plain.rstrip(b"\0").decode()
        except UnicodeDecodeError:
            return None
