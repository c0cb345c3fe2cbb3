"""Checksums for anti-entropy: per service, and summed over a set of services.

A service's digest covers each live instance's identity and its three stamps
(write, liveness evidence, judged evidence: see core/store; every change of a
field changes one of them, so fields need not be hashed), its key and its
settings' stamp.  Tombstones are left out: they expire at different times on
different nodes.

It is a *sum*: the xxh64 of the key and settings stamp plus, modulo 2**64
(``MASK``), the xxh64 of each record (``record_digest``).  So it does not depend
on the order records were stored in (nodes holding the same records agree), and
it is kept up to date incrementally instead of being recomputed over every
instance on each change (a service of 2,000 instances changing between every
anti-entropy round cost a node ~14% of its time):

* the store tracks a service once its digest was first asked for
  (``ServiceRecord.digest_sum`` is then not None; a lone node never asks, and
  pays nothing): each record keeps the hash it contributes
  (``InstanceRecord.digest``), a record leaving the table takes it out of the
  sum at once, and a record that changed, or is new, is noted as *dirty*
  (``ServiceRecord.digest_dirty``; the store notes it wherever a record's
  stamps can change, which is where it resets the cached value);
* ``service_digest`` re-hashes only the dirty records: O(changes), not
  O(instances).  A service with more dirty records than half its instances
  starts over from scratch (the dirty set stays bounded);
* ``digest_from_scratch`` is the definition, which the tracked value always
  equals (tests/core/test_digests_incremental.py, a property test).

A summary over many services is the sum of their digests modulo 2**64, so it
does not depend on iteration order either (see ``DistroNode._summary``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import xxhash

from meshreg.core.mapping import service_key_bytes
from meshreg.model import ServiceKey

if TYPE_CHECKING:
    from meshreg.core.store import InstanceRecord, ServiceRecord

MASK = 2**64 - 1
_xxh64 = xxhash.xxh64_intdigest


def record_digest(rec: InstanceRecord) -> int:
    """One record's share of its service's digest: its id and its three stamps."""
    iid = rec.id
    return _xxh64(
        f"{iid.ip}\x00{iid.port}\x00{iid.cluster}\x00{rec.version}\x00{rec.alive}"
        f"\x00{rec.down}".encode()
    )


def settings_digest(key: ServiceKey, settings_version: int) -> int:
    """The share of a service's key and settings' stamp (all of the digest of a service
    that has settings but no instance)."""
    head = service_key_bytes(key)
    if settings_version:
        head += f"\x01{settings_version}".encode()
    return int(_xxh64(head))


def digest_from_scratch(svc: ServiceRecord, settings_version: int = 0) -> int:
    """The digest by its definition, over every record (no state read or kept)."""
    total = settings_digest(svc.key, settings_version)
    for rec in svc.instances.values():
        total += record_digest(rec)
    return total & MASK


def service_digest(svc: ServiceRecord, settings_version: int = 0) -> int:
    """Digest of one service and its settings' stamp: cached until its next change,
    then brought up to date from the records that changed (module docstring)."""
    cached = svc.digest_cache
    if cached is not None:
        return cached
    total = svc.digest_sum
    dirty = svc.digest_dirty
    if total is None or dirty is None:  # first asked (or given up): every record
        total = 0
        for rec in svc.instances.values():
            h = rec.digest = record_digest(rec)
            total += h
        svc.digest_dirty = set()
    elif dirty:
        instances = svc.instances
        for rec in dirty:
            if instances.get(rec.id) is rec:  # (a record that left took its share along)
                h = record_digest(rec)
                total += h - rec.digest
                rec.digest = h
        dirty.clear()
    total &= MASK
    svc.digest_sum = total
    value = (settings_digest(svc.key, settings_version) + total) & MASK
    svc.digest_cache = value
    return value
