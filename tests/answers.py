"""Core tests' view of ``handle``: its one answer unwrapped the way a test reads it."""

from __future__ import annotations

from typing import Any

from meshreg.core.effects import Forward, Rejected, Reply
from meshreg.wire.messages import RequestRejected
from meshreg.wire.peer import parse_call_result
from meshreg.wire.result_maps import to_wire


def served(node: Any, req: Any, now: float, forwarded: bool = False, client: Any = None) -> Any:
    """``node.handle(req, now, forwarded)``: a ``Reply``'s result, a ``Forward`` as it
    is, and a ``Rejected`` raised as RequestRejected (so ``pytest.raises`` reads it).
    ``client``: who sent it (a key's name, or a connection's routing id)."""
    if client is None:
        answer = node.handle(req, now, forwarded)
    else:
        answer = node.handle(req, now, forwarded, client=client)
    if type(answer) is Reply:
        return answer.result
    if type(answer) is Rejected:
        raise RequestRejected(answer.code, answer.message, answer.req_id, answer.op)
    assert type(answer) is Forward, answer
    return answer


def served_map(node: Any, req: Any, now: float, forwarded: bool = False, client: Any = None) -> Any:
    """``served``, its result as the map a client reads (wire/result_maps)."""
    return to_wire(served(node, req, now, forwarded, client))


def stats_map(node: Any, now: float) -> Any:
    """``node.stats_result(now)`` as the map a client reads (wire/result_maps)."""
    return to_wire(node.stats_result(now))


def peer_reply(node: Any, tag: int, result: Any, now: float) -> None:
    """``node.peer_reply`` with a result map, parsed by wire as the runtime does."""
    node.peer_reply(tag, parse_call_result(result), now)
