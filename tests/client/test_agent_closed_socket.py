"""A socket closed earlier in a loop turn (a failover replaced the server's DEALER while
the same poll reported it readable) is skipped, not read: reading it raised ENOTSOCK,
which killed the client's I/O thread (CI on 940eeb6: two providers of review25's
membership test stopped beating and their live instances went unhealthy)."""

from __future__ import annotations

from typing import Any

import zmq

from meshreg.client.agent import ClientAgent


class OnePoll:
    """A poller whose next poll reports ``events`` (then nothing)."""

    def __init__(self, events: list[tuple[Any, int]]) -> None:
        self.events = events

    def poll(self, timeout: int) -> list[tuple[Any, int]]:
        events, self.events = self.events, []
        return events

    def register(self, *args: Any) -> None:
        pass

    def unregister(self, *args: Any) -> None:
        pass


def test_a_socket_closed_earlier_in_the_turn_is_not_read() -> None:
    agent = ClientAgent([("127.0.0.1", 1)], 5.0, 1.0, 10.0, lambda *a: None)
    try:
        replaced = agent._socket(zmq.DEALER)
        replaced.close(linger=0)  # as _connect closes the old DEALER at a failover
        agent._poller = OnePoll([(replaced, zmq.POLLIN)])  # type: ignore[assignment]
        agent._turn()  # raised zmq.ZMQError (ENOTSOCK) before
    finally:
        agent._wake_push.close(linger=0)
        agent._wake_pull.close(linger=0)
        agent.ctx.term()
