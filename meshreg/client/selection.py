"""Choosing an instance: healthy, enabled, weighted at random (pure).

``choose`` takes the candidates, an injected ``random.Random`` and the set of
addresses to avoid (instances that just failed a call).  Weight 0 is never
chosen; avoided instances are used only when nothing else is left, so a call
still has somewhere to go when every instance has failed once.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable, Mapping

from meshreg.model import Instance, InstanceFilter


def eligible(
    instances: Iterable[Instance],
    cluster: str | Iterable[str] | None = None,
    protected: bool = False,
    metadata: Mapping[str, str] | None = None,
) -> list[Instance]:
    """Instances a call may go to: healthy, enabled, weight above 0 (optionally of one
    cluster or several, and with every pair of ``metadata`` in theirs).

    ``protected``: the service's protection threshold is in force, so unhealthy
    instances take their share too (a mass failure must not crush the survivors).
    """
    keep = InstanceFilter.of(cluster, metadata).matches
    return [
        i for i in instances if (i.healthy or protected) and i.enabled and i.weight > 0 and keep(i)
    ]


def choose(
    candidates: list[Instance], rng: random.Random, avoid: Collection[str] = ()
) -> Instance | None:
    """One candidate at random in proportion to weight; None when there is none."""
    pool = [i for i in candidates if i.address not in avoid] or candidates
    total = sum(i.weight for i in pool)
    if total <= 0:
        return None
    point = rng.random() * total
    for inst in pool:
        point -= inst.weight
        if point < 0:
            return inst
    return pool[-1]  # float rounding: the last one owns the remainder
