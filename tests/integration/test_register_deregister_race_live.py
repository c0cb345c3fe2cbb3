"""One thread registers an instance while another deregisters it (a real node, real
sockets): the node applies the register, then the deregister, in the order they left;
the register's answer comes after the deregister was sent.  The instance must stay
deregistered.  Before, the client held it from that answer on, and brought it back on
the node (a beat answered NOT_FOUND is registered again; a session redo) for the
client's lifetime.

The order is made certain with SIGSTOP: both calls leave while the node is stopped."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import pytest
from helpers import NodeProcess, free_port_pair, wait_until

from meshreg import Client

pytestmark = pytest.mark.timeout(90)


def sent(client: Client, op: str) -> bool:
    """Whether a request ``op`` is out (the client's I/O thread took the call)."""
    try:
        pending = list(client._agent.core._pending.values())  # (white box: read only)
    except RuntimeError:  # changed size while copied: ask again
        return False
    return any(p.op == op for p in pending)


@pytest.mark.parametrize("sessions", [True, False], ids=["session", "beats"])
def test_a_deregister_sent_while_the_register_is_out_wins(sessions: bool) -> None:
    port = free_port_pair()
    address = f"127.0.0.1:{port}"
    node = NodeProcess(port=port).start()
    provider = Client([address], timeout=10.0, attempt_timeout=8.0, beat_interval=0.5,
                      sessions=sessions)  # fmt: skip
    errors: list[BaseException] = []

    def call(fn: Any, *args: Any) -> threading.Thread:
        def run() -> None:
            try:
                fn(*args)
            except BaseException as exc:  # reported below
                errors.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    try:
        with Client([address], timeout=3.0) as reader:
            provider.register("keeper", "10.0.0.9", 8000)  # beats (renewals) go on for it
            assert node.proc is not None
            os.kill(node.proc.pid, signal.SIGSTOP)
            try:
                registering = call(provider.register, "race", "10.0.0.1", 8001)
                wait_until(lambda: sent(provider, "register"), 5, 0.01, "the register to leave")
                deregistering = call(provider.deregister, "race", "10.0.0.1", 8001)
                wait_until(lambda: sent(provider, "deregister"), 5, 0.01,
                           "the deregister to leave")  # fmt: skip
            finally:
                os.kill(node.proc.pid, signal.SIGCONT)
            registering.join(15)
            deregistering.join(15)
            assert not registering.is_alive() and not deregistering.is_alive()
            assert errors == []
            # four more beats (renewals) of this client: a beat answered NOT_FOUND, or a
            # renewal counting fewer instances than the client holds, brought it back
            op = "session_renew" if sessions else "beat"
            start = reader.stats()["requests"].get(op, 0)
            wait_until(lambda: reader.stats()["requests"].get(op, 0) >= start + 4, 10, 0.1,
                       f"four more {op} requests")  # fmt: skip
            provider.register("race-marker", "10.0.1.1", 9000)  # after every earlier write
            wait_until(lambda: reader.instances("race-marker") != [], 5, 0.05, "the marker")
            listed = [i.address for i in reader.instances("race", healthy_only=False)]
            assert listed == [], f"deregistered, yet listed: {listed}"
            assert not any(iid.port == 8001 for _, iid in provider._agent.core.registrations)
    finally:
        provider.close()
        node.cleanup()
