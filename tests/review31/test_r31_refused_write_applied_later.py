"""review31: with ``fail_when_refused=True`` a config write to a server that refused the
connection fails with "the request never left this client (not applied)", yet it is
applied once a node starts listening there.

Client docstring: "a call fails as soon as every server has refused the connection";
session.py ``_fail_unsent`` raises ServerUnreachableError "... so the request never left
this client (not applied)" with ``unsent = True``.  But the server DEALER is not
IMMEDIATE (agent.py ``_connect``): the encoded request already sits in libzmq's pipe of
that socket, which keeps reconnecting; ``_fail_unsent`` only drops the Python-side
pending entry.  When the node comes up the queued request is delivered and applied
(its stamped deadline is this attempt's end plus slack, far ahead here)."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from helpers import HOST, NodeProcess, free_port_pair, wait_until  # noqa: E402

from meshreg import Client  # noqa: E402
from meshreg.errors import ServerUnreachableError  # noqa: E402


@pytest.mark.timeout(60)
def test_write_said_not_applied_is_applied_when_node_starts() -> None:
    port = free_port_pair()
    address = f"{HOST}:{port}"
    node = NodeProcess(port=port)
    client = Client(
        servers=[address],
        timeout=30.0,
        attempt_timeout=30.0,
        fail_when_refused=True,
        sessions=False,
        handle_sigterm=False,
    )
    reader = None
    try:
        with pytest.raises(ServerUnreachableError) as err:
            client.config_publish("r31-refused", "applied-anyway")
        if "not applied" not in str(err.value) and not getattr(err.value, "unsent", False):
            return  # an outcome not claimed: nothing to hold it to
        node.start()  # the node the write was refused by starts; the client stays open
        reader = Client(servers=[address], timeout=5.0, sessions=False, handle_sigterm=False)

        def seen() -> bool:
            return reader.config_get("r31-refused") is not None

        # The failure said the write was not applied: it must never appear.
        try:
            wait_until(seen, timeout=5.0, what="the refused write")
        except AssertionError:
            return  # not applied: as promised
        info = reader.config_get("r31-refused")
        pytest.fail(
            f"write reported 'never left this client (not applied)' was applied later: "
            f"{info!r}"
        )
    finally:
        client.close()
        if reader is not None:
            reader.close()
        node.cleanup()
