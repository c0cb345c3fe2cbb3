"""review54 F3: a Python client whose key is not in the nodes' ACL, given two servers,
logs "meshreg server A closed the connection (it stopped or restarted); trying B": the
node did neither, it refused the key.

README "Security": an unknown key "cannot connect at all (stats.handshakes_refused, and a
log line with the key)"; README, the client: a write that never left the client because
"the keys differ" raises ServerUnreachableError saying so.  The final error does say it
("... or the node refused this client's key"), but the WARNING a service's log shows first
sends the operator after a node restart that never happened.  With one server the client
logs the refusal plainly ("refused this client's notification connection (authentication
refused (ZAP status 400))").  By hand: 4 of 4 `Client([A, B], key="alien.key",
server_key="cluster.pub").ping()` logged the "stopped or restarted" line, both nodes up
the whole time.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from r54lib import keyed_pair

from meshreg import Client
from meshreg.errors import MeshregError


@pytest.mark.timeout(60)
def test_a_refused_key_is_not_reported_as_a_node_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    nodes = keyed_pair(tmp_path, "alien")
    try:
        said = []
        for _ in range(2):
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="meshreg"):
                c = Client([n.address for n in nodes], key=str(tmp_path / "alien.key"),
                           server_key=str(tmp_path / "cluster.pub"), timeout=2.0,
                           handle_sigterm=False)  # fmt: skip
                try:
                    with pytest.raises(MeshregError):
                        c.ping()
                finally:
                    c.close()
            said += [r.getMessage() for r in caplog.records]
        for node in nodes:
            assert node.proc is not None and node.proc.poll() is None, "a node stopped"
        wrong = [m for m in said if "stopped or restarted" in m]
        assert not wrong, (
            "a key outside the ACL was logged as a node that stopped or restarted "
            f"(both nodes ran throughout): {wrong[0]}"
        )
    finally:
        for node in nodes:
            node.cleanup()
