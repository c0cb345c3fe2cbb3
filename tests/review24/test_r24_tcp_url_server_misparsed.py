"""review24 F10: a server given as a ZeroMQ endpoint ("tcp://127.0.0.1:7800") is
misparsed as host "tcp://127.0.0.1:7800" with the default port 7800, and every call then
waits out the timeout.

meshreg is "ZeroMQ frames" (README), so a ZeroMQ user writes endpoints the ZeroMQ way.
``Client("tcp://127.0.0.1:P")`` is accepted at construction; ``ping()`` waits 3 s and fails
with "no reply from meshreg server(s) tcp://127.0.0.1:P:7800 ... (Invalid argument
(addr='tcp://[tcp://127.0.0.1:P]:7800'))".  Expected: either accept the scheme, or refuse
at construction ("servers are host:port, not a URL") -- the address validation the
client already does for ports ("bad address ...: port must be in 1..65535").
"""

from __future__ import annotations

import time

import pytest
from helpers import NodeProcess

from meshreg import Client
from meshreg.errors import MeshregError


@pytest.mark.timeout(60)
def test_a_tcp_endpoint_is_accepted_or_refused_at_once(tmp_path) -> None:
    node = NodeProcess("--data-dir", str(tmp_path / "d"))
    try:
        node.start()
        t0 = time.monotonic()
        try:
            c = Client(f"tcp://{node.address}")
        except (ValueError, MeshregError):
            return  # refused at construction: fine
        try:
            c.ping()  # accepted: it must work
        except MeshregError as exc:
            pytest.fail(
                f"Client('tcp://{node.address}') was accepted, then ping() failed after "
                f"{time.monotonic() - t0:.1f}s: {exc}"
            )
        finally:
            c.close(timeout=2)
    finally:
        node.cleanup()
