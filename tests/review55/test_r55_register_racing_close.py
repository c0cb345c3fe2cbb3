"""review55 F3: a ``register()`` that succeeds while ``close()`` runs in another thread is
never deregistered: the instance stays listed healthy for ``unhealthy_after`` (15 s) and
listed until ``evict_after`` (30 s), what ``close()`` and the atexit hook exist to avoid.

``close()`` closes the session, lists the registrations, deregisters them, then stops the
I/O thread; ``register()`` does not look at ``_closed``, so one queued after the listing
is applied by the node and returns normally (and one queued just before the I/O thread
stops waits ``timeout + 2`` s and raises "the I/O thread did not answer", although it
may have been applied).  Seen: a thread registering port after port while the main
thread called ``close()``: the last two that returned OK were still listed healthy after
``close()`` returned, and unhealthy 17 s later (sessions=False: four of them, healthy).

README.md ("The Python client"): ``c.close()  # deregisters what it registered``;
"Every method is safe to call from several threads"; client.py ``close``: "Deregister
what this client registered, then stop its threads."
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from helpers import wait_until

from meshreg import Client
from meshreg.errors import MeshregError


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sessions", [True, False])
def test_nothing_registered_is_left_after_close(start_node: Any, sessions: bool) -> None:
    node = start_node()
    service = f"r55-race-{sessions}"
    client = Client([node.address], sessions=sessions, handle_sigterm=False)
    observer = Client([node.address], handle_sigterm=False)
    returned: list[int] = []  # ports whose register() returned normally
    stop = threading.Event()

    def keep_registering() -> None:
        port = 0
        while not stop.is_set():
            port += 1
            try:
                client.register(service, "10.55.0.1", port)
            except MeshregError:
                return  # closed: refused (what the fix may do) is fine
            returned.append(port)

    worker = threading.Thread(target=keep_registering)
    try:
        worker.start()
        wait_until(lambda: len(returned) >= 20, 20, what="the worker registers")
        client.close()
        stop.set()
        worker.join(15)
        assert not worker.is_alive()

        def left() -> list[int]:
            listing = observer.instances(service, healthy_only=False)
            return sorted(i.port for i in listing)

        def left_ok() -> list[int]:  # left, though their register() returned normally
            return [p for p in left() if p in returned]

        try:  # a deregistration in flight gets 3 s to land
            wait_until(lambda: not left_ok(), 3, 0.1, "nothing of the closed client listed")
        except AssertionError:
            still = left()
            ok = [p for p in still if p in returned]
            raise AssertionError(
                f"after close() returned, instances of the closed client are still listed "
                f"(ports {still}; {len(ok)} of them registered by a register() that "
                f"returned normally): nothing deregisters them, they stay healthy for the "
                f"node's unhealthy_after"
            ) from None
    finally:
        stop.set()
        client.close(timeout=0.5)
        observer.close()
