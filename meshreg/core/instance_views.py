"""The instance lists of large services, kept between reads while they stand.

An ``instances`` read of a service of 50,000 instances built its rows anew each time
(about 150 ms of the node's loop: every record visited, a tuple each, a sort), so one
client reading it on a few dozen connections held every other client's request for
seconds (review52 F3: a register from 1 ms to 5.7 s).  A service's rows are kept while
its revision stands: the revision moves with every change a watcher or a read sees
(core/store ``_changed``: a record, its health, an operator's override, the settings),
which is what a client's own cache relies on too (``revisions``).  Only services of at
least ``MIN_ROWS`` instances (a small list costs less to build than to keep), within
``MAX_ROWS`` rows in all, the least recently read dropped first.  The wire keeps the
packed form of the same rows (wire/result_maps ``instances_packed``), by their identity.
"""

from __future__ import annotations

from collections import OrderedDict

from meshreg.core.results import InstanceRow
from meshreg.model import ServiceKey

MIN_ROWS = 256  # instances; a smaller service's list is built per read
MAX_ROWS = 250_000  # rows kept in all (about 30 MB at most)

Rows = tuple[InstanceRow, ...]


class InstanceViews:
    """(service, healthy only) -> its rows at one revision (module docstring)."""

    def __init__(self, max_rows: int = MAX_ROWS) -> None:
        self.max_rows = max_rows
        self._views: OrderedDict[tuple[ServiceKey, bool], tuple[int, bool, Rows]] = OrderedDict()
        self.rows = 0  # rows kept
        self.hits = 0
        self.misses = 0

    def get(self, key: ServiceKey, healthy_only: bool, revision: int) -> tuple[bool, Rows] | None:
        """(protected, rows) of ``key`` at ``revision``, if kept; else None."""
        slot = (key, healthy_only)
        view = self._views.get(slot)
        if view is None or view[0] != revision:
            self.misses += 1
            return None
        self._views.move_to_end(slot)
        self.hits += 1
        return view[1], view[2]

    def put(
        self, key: ServiceKey, healthy_only: bool, revision: int, protected: bool, rows: Rows
    ) -> None:
        """Keep ``rows`` (built at ``revision``), in place of what was kept for them (a list
        above ``max_rows`` is not kept, and the older one goes: it is stale)."""
        slot = (key, healthy_only)
        old = self._views.pop(slot, None)
        if old is not None:
            self.rows -= len(old[2])
        if len(rows) > self.max_rows:
            return
        self._views[slot] = (revision, protected, rows)
        self.rows += len(rows)
        while self.rows > self.max_rows:
            _, (_, _, dropped) = self._views.popitem(last=False)
            self.rows -= len(dropped)

    def __len__(self) -> int:
        return len(self._views)

    def stats(self) -> dict[str, int]:
        """``stats.runtime.instance_lists``: lists kept, their rows, reads of a large
        service answered from one (``reads_kept``) or built (``reads_built``)."""
        return {"kept": len(self._views), "rows": self.rows, "reads_kept": self.hits,
                "reads_built": self.misses}  # fmt: skip
