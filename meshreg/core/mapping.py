"""Which live member is responsible for a service: rendezvous hashing.

Highest-random-weight hashing: every member scores ``xxh64(member, service)``
and the highest score owns the service.  A pure function of (service key,
members): no globals and no ordering rule hidden anywhere.  When a member
leaves, only the services it owned move (each to its runner-up); when one
joins, it takes only the services it now scores highest on - about 1/N of
them - instead of the hash-mod-N reshuffle of nearly everything.
"""

from __future__ import annotations

from collections.abc import Iterable

import xxhash

from meshreg.model import ServiceKey


def service_key_bytes(key: ServiceKey) -> bytes:
    return b"\x00".join((key.namespace.encode(), key.group.encode(), key.service.encode()))


def member_score(member: str, key_bytes: bytes) -> int:
    """One member's weight for one key: xxh64 over node id and key together."""
    return int(xxhash.xxh64_intdigest(member.encode() + b"\x01" + key_bytes))


def responsible_node(key: ServiceKey, members: Iterable[str]) -> str:
    """The member (by id) responsible for ``key``; ties broken by the larger id."""
    return responsible_for_bytes(service_key_bytes(key), members)


def responsible_for_bytes(kb: bytes, members: Iterable[str]) -> str:
    """The member scoring highest on key bytes ``kb`` (a key space of its own: services
    use ``service_key_bytes``, configs ``configcenter.model.config_key_bytes``)."""
    best = ""
    best_score = -1
    for member in members:
        score = member_score(member, kb)
        if score > best_score or (score == best_score and member > best):
            best, best_score = member, score
    if best_score < 0:
        raise ValueError("responsible_node needs at least one member")
    return best
