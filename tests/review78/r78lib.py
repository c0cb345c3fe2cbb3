"""review78 helpers: record the "direct" refusals (core/distro ``_refuse_direct``)."""

from __future__ import annotations

import os
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
R75 = os.path.join(os.path.dirname(HERE), "review75")
if R75 not in sys.path:
    sys.path.insert(0, R75)

from meshreg.core import distro  # noqa: E402

CURRENT: list[Any] = []  # the RFaults running (set by the caller), for "cut off" per the probe


class Refusals:
    """Context manager: every refusal a node raises, as (t, node, up, total, op, cut)."""

    def __init__(self) -> None:
        self.log: list[tuple[float, str, int, int, str, bool]] = []
        self._orig = distro.DistroNode._refuse_direct

    def reset(self) -> None:
        self.log.clear()

    def __enter__(self) -> Refusals:
        orig, log = self._orig, self.log

        def wrapped(node: Any, req: Any, now: float) -> None:
            try:
                orig(node, req, now)
            except Exception:
                up, total = node._member_counts()
                cut = _probe_cut(node.node_id)
                log.append((round(now, 2), node.node_id, up, total, req.op, cut))
                raise

        distro.DistroNode._refuse_direct = wrapped  # type: ignore[method-assign]
        import r75sim

        init = self._init = r75sim.RFaults.__init__

        def remember(rs: Any, *a: Any, **k: Any) -> None:
            init(rs, *a, **k)
            r75sim.CURRENT_RS = rs  # type: ignore[attr-defined]

        r75sim.RFaults.__init__ = remember  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: Any) -> None:
        distro.DistroNode._refuse_direct = self._orig  # type: ignore[method-assign]
        import r75sim

        r75sim.RFaults.__init__ = self._init  # type: ignore[method-assign]

    def spurious(self) -> list[tuple[float, str, int, int, str, bool]]:
        return [r for r in self.log if not r[5]]


def _probe_cut(node_id: str) -> bool:
    import r75sim

    rs = r75sim.CURRENT_RS if hasattr(r75sim, "CURRENT_RS") else None
    if rs is None:
        return False
    return node_id in rs.minority
