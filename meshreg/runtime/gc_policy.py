"""Keep the registry table out of the garbage collector's full collections.

CPython's full (generation 2) collection walks every container object.  With
a million instances that is several million objects and a pause of 200-650 ms
(measured on a node taking registrations), due on every 25% growth of the
long-lived heap (a burst of registrations, a catch-up) and again and again
under registration churn.  The table's records hold no reference cycles: they
are freed by reference counting when replaced or removed, so a full
collection finds nothing there.

``avoid_full_collections`` keeps the young generations as they are (they
collect the short-lived cycles - exceptions with their tracebacks, say -
where nearly all cyclic garbage dies) and turns off the automatic full
collection.  The cost is that a cycle which survives two young collections
and dies later is not reclaimed; the node does not create such cycles.  It is
process-wide, so only a process that is a node (``meshreg node``) turns it
on.  (``gc.freeze()`` was tried first: the 25% rule then measures growth
against the small unfrozen rest and triggers full collections more often.)
"""

from __future__ import annotations

import gc

NEVER = 2**31 - 1  # young collections before a full one: never, in practice


def avoid_full_collections() -> tuple[int, int, int]:
    """Turn off automatic full collections; returns the thresholds set."""
    gen0, gen1, _ = gc.get_threshold()
    gc.set_threshold(gen0, gen1, NEVER)
    return gc.get_threshold()
