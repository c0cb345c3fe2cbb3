"""Core tests' view of ``handle``: its one answer unwrapped the way a test reads it."""

from __future__ import annotations

from typing import Any

from meshreg.core.effects import Forward, Rejected, Reply
from meshreg.wire.messages import RequestRejected


def served(node: Any, req: Any, now: float, forwarded: bool = False) -> Any:
    """``node.handle(req, now, forwarded)``: a ``Reply``'s result, a ``Forward`` as it
    is, and a ``Rejected`` raised as RequestRejected (so ``pytest.raises`` reads it)."""
    answer = node.handle(req, now, forwarded)
    if type(answer) is Reply:
        return answer.result
    if type(answer) is Rejected:
        raise RequestRejected(answer.code, answer.message, answer.req_id, answer.op)
    assert type(answer) is Forward, answer
    return answer
