"""Checksums for anti-entropy: per service, and summed over a set of services.

A service's digest covers each live instance's identity and its three stamps
(write, liveness evidence, judged evidence: see core/store; every change of a
field changes one of them, so fields need not be hashed).
Tombstones are left out: they expire at different times on different nodes.
A summary over many services is the sum of their digests modulo 2**64 (``MASK``),
so it does not depend on iteration order (see ``DistroNode._summary``).
"""

from __future__ import annotations

import xxhash

from meshreg.core.mapping import service_key_bytes
from meshreg.core.store import ServiceRecord
from meshreg.model import ServiceKey

MASK = 2**64 - 1


def service_digest(svc: ServiceRecord, settings_version: int = 0) -> int:
    """Digest of one service and its settings' stamp (cached until its next change)."""
    cached = svc.digest_cache
    if cached is not None:
        return cached
    h = xxhash.xxh64(service_key_bytes(svc.key))
    if settings_version:
        h.update(f"\x01{settings_version}".encode())
    for iid in sorted(svc.instances):
        rec = svc.instances[iid]
        h.update(
            f"\x00{iid.ip}\x00{iid.port}\x00{iid.cluster}"
            f"\x00{rec.version}\x00{rec.alive}\x00{rec.down}".encode()
        )
    value = int(h.intdigest())
    svc.digest_cache = value
    return value


def settings_digest(key: ServiceKey, settings_version: int) -> int:
    """Digest of a service that has settings but no instance."""
    h = xxhash.xxh64(service_key_bytes(key))
    h.update(f"\x01{settings_version}".encode())
    return int(h.intdigest())
