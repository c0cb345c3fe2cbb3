"""The first write after the only node went down never left the client, and says so
(review24 notes: it was "outcome unknown", blaming a stopped or overloaded node)."""

from __future__ import annotations

import pytest
from helpers import NodeProcess, wait_until

from meshreg import Client
from meshreg.errors import OutcomeUnknownError, ServerUnreachableError


@pytest.mark.timeout(60)
def test_a_write_after_the_node_died_is_not_an_unknown_outcome(tmp_path) -> None:
    node = NodeProcess("--data-dir", str(tmp_path / "d"))
    c = None
    try:
        node.start()
        c = Client([node.address], timeout=1.5, attempt_timeout=0.5)
        c.register("gone", "10.7.0.1", 80)
        node.kill()
        # the loop hears the connection drop (libzmq's DISCONNECTED) within moments
        wait_until(lambda: not c._agent.core._link_up, 5, 0.01, "the drop seen")
        with pytest.raises(ServerUnreachableError) as info:
            c.deregister("gone", "10.7.0.1", 80)
        assert not isinstance(info.value, OutcomeUnknownError), info.value
        assert info.value.unsent and "never left this client" in str(info.value)
    finally:
        if c is not None:
            c.close(timeout=0.5)
        node.cleanup()
