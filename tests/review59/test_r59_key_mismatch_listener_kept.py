"""review59 F1 (medium): a client whose keys do not match the node's is told so by its first
call, which keeps no listener; its next `subscribe()` / `config_listen()` raises at once
saying "refused the connection (nothing listens there)" (false: a node listens there) and
KEEPS the listener (`listener_kept` True), for an error waiting cannot cure.

README "Consumers", Outage: "A `subscribe()` (or `config_listen()`) that no node could
answer ... keeps its listener ... An error waiting cannot cure (a bad name, the ACL, keys
that differ) keeps nothing."

Observed (node with --key, Client without key, timeout 1.5 s), in every run (two scripts
covering both orders, and this test twice: 6 of 6):
  subscribe -> listener_kept False, "... (127.0.0.1:P said: security mechanism mismatch
  (one side has a key, the other none)) ..."  (right)
  config_listen right after -> listener_kept True, "config_listen: meshreg server(s)
  127.0.0.1:P refused the connection (nothing listens there); this read does not wait
  while none answers ...; the listener is kept"  (wrong cause, and kept)
The same the other way round (config_listen first, then subscribe).  The offline fast
path answers with a generic "refused" reason and forgets the handshake's diagnosis.
(With a wrong server_key, every call is kept, and `meshreg watch` waits for ever, though
its message says the node may have refused this client's key.)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from helpers import NodeProcess, free_port_pair, meshreg_cmd, wait_until

from meshreg import Client
from meshreg.errors import MeshregError

pytestmark = pytest.mark.timeout(90)



def _keyed_node(tmp: Path) -> NodeProcess:
    subprocess.run(meshreg_cmd("keygen", str(tmp / "cluster")), check=True, capture_output=True)
    key = str(tmp / "cluster.key")
    node = NodeProcess("--key", key, "--data-dir", str(tmp / "d"), port=free_port_pair())
    node.launch()

    def listening() -> bool:  # a keyed node does not answer a plain ping: wait for its log
        return "serving requests" in node.log()

    wait_until(listening, 20, what="the keyed node to serve")
    return node


@pytest.mark.parametrize("first", ["subscribe", "config_listen"])
def test_second_listener_after_key_mismatch_is_not_kept(first: str) -> None:
    with tempfile.TemporaryDirectory(prefix="r59-") as tmp:
        node = _keyed_node(Path(tmp))
        try:
            # no key; 5 s: time for the handshake refusal on a loaded machine (CI)
            client = Client([node.address], timeout=5.0, attempt_timeout=1.0)
            try:
                calls = {
                    "subscribe": lambda: client.subscribe("orders", lambda xs: None),
                    "config_listen": lambda: client.config_listen("app.yaml", lambda c, r: None),
                }
                second = "config_listen" if first == "subscribe" else "subscribe"
                errors = {}
                for name in (first, second):
                    with pytest.raises(MeshregError) as caught:
                        calls[name]()
                    errors[name] = caught.value
                # the first call diagnoses the mismatch and keeps nothing (as documented)
                assert errors[first].listener_kept is False, errors[first]
                assert "mechanism mismatch" in str(errors[first])
                # the second call must not do worse: keys that differ keep nothing, and a
                # node does listen there
                text = str(errors[second])
                assert "nothing listens there" not in text, text
                assert errors[second].listener_kept is False, text
            finally:
                client.close()
        finally:
            node.cleanup()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
