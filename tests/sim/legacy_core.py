"""The sim's copy of the runtime still speaks the core's old ``handle`` contract.

``tests/sim/network.py`` plays the runtime for the cores it simulates; until it runs
the real ``NodeRuntime`` (the transport seam, issue 11), this subclass gives it the
answers the way it reads them: ``handle`` returns a ``Reply``'s result or a
``Forward`` and raises ``RequestRejected``; ``received_at`` (a forward that timed
out) goes through ``forward_failed``, so the core decides the fallback as in the
runtime.  A rejection is counted by the core, so ``rejected`` counts nothing more.
``peer_reply`` takes the reply's result map and parses it, as the runtime does.
"""

from __future__ import annotations

from typing import Any

from meshreg.core import distro
from meshreg.core.effects import Forward, Rejected
from meshreg.wire.messages import RequestRejected
from meshreg.wire.peer import parse_call_result
from meshreg.wire.replies import decode_reply, encode_ok


class DistroNode(distro.DistroNode):
    def handle(  # type: ignore[override]
        self, req: Any, now: float, forwarded: bool = False, *, received_at: float | None = None
    ) -> Any:
        if received_at is None:
            answer = super().handle(req, now, forwarded)
        else:  # the responsible node did not answer: the core decides
            answer = self.forward_failed(Forward("", "", req, received_at), now)
        if type(answer) is Rejected:
            raise _Refused(answer.code, answer.message, answer.req_id, answer.op)
        if type(answer) is Forward:
            return answer
        # as the wire encodes it (a reconcile's payloads are the core's ServicePayloads)
        return decode_reply(encode_ok(answer.req_id, answer.result))["result"]

    def peer_reply(self, tag: int, reply: Any, now: float) -> None:  # type: ignore[override]
        """The sim hands over the result map; the runtime parses it first."""
        super().peer_reply(tag, parse_call_result(reply), now)

    def rejected(self, error: RequestRejected) -> None:
        if type(error) is not _Refused:  # the core counted its own refusals
            super().rejected(error)


class _Refused(RequestRejected):
    """A refusal the core answered (and counted)."""
