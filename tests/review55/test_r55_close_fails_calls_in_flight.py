"""review55 F1: ``close()`` leaves config calls and ``register`` of other threads hanging.

A ``config_get``, ``config_publish`` or ``register`` running in another thread when
``close()`` is called waits out ``timeout + 2`` s and then raises "the meshreg client's
I/O thread did not answer within 5s" (``config_publish``: ``OutcomeUnknownError``;
``register``: a plain ``ServerUnreachableError``), although the I/O thread ended at
once; ``instances`` and ``set_service`` in flight at the same moment fail at once with
``ClientClosedError``.  client/agent.py's module docstring: "calls made after that raise
ClientClosedError naming the cause", and ``_abandon``: "Fail every call still waiting";
the config session's reads and writes wait on ``on_reply``/``on_error`` callbacks that
``ClientSession.abandon`` never calls (only ``reply_to`` is failed).
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import pytest
from helpers import wait_until

from meshreg import Client
from meshreg.errors import ClientClosedError, OutcomeUnknownError

ACCEPTED = (f"{ClientClosedError.__name__}:", f"{OutcomeUnknownError.__name__}:")


@pytest.mark.timeout(60)
def test_close_fails_calls_in_flight_at_once(start_node: Any) -> None:
    node = start_node()
    client = Client([node.address], timeout=3.0, handle_sigterm=False)
    try:
        client.ping()
        node.freeze()  # the calls below wait for an answer that cannot come
        outcomes: dict[str, tuple[str, float]] = {}  # name -> (outcome, when it ended)

        def run(name: str, fn: Any) -> None:
            try:
                fn()
                outcomes[name] = ("returned", time.monotonic())
            except BaseException as exc:  # noqa: BLE001 (what it raised is the finding)
                outcomes[name] = (f"{type(exc).__name__}: {exc}", time.monotonic())

        calls = {
            "instances": lambda: client.instances("r55-svc"),
            "config_get": lambda: client.config_get("r55-cfg"),
            "config_publish": lambda: client.config_publish("r55-cfg", "v"),
            "register": lambda: client.register("r55-svc", "10.55.0.2", 1),
            "set_service": lambda: client.set_service("r55-svc", protect_threshold=0.5),
        }
        threads = [threading.Thread(target=run, args=item) for item in calls.items()]
        for t in threads:
            t.start()
        core = client._agent.core  # every call sent to the frozen node (read only)
        wait_until(lambda: len(core._pending) >= len(calls), 5.0, 0.02, "every call in flight")
        client.close(timeout=1.0)
        closed_at = time.monotonic()
        for t in threads:
            t.join(10)
        late = {
            name: f"{what} ({ended - closed_at:.1f}s after close() returned)"
            for name, (what, ended) in outcomes.items()
            if ended > closed_at + 1.0
            or not what.startswith(ACCEPTED)
            or "I/O thread did not answer" in what
        }
        assert not late, (
            "calls in flight when close() was called should fail at once with "
            f"ClientClosedError (instances does: {outcomes.get('instances', ('?', 0))[0]}; a "
            f"write may say OutcomeUnknownError instead); these did not: {late}"
        )
    finally:
        node.signal(signal.SIGCONT)  # (teardown kills it)
        client.close(timeout=0.5)
