"""review59 F4 (low, diagnostics): while the client's only node is frozen (SIGSTOP), the
first `subscribe()`/`config_listen()` says rightly that the connection completed its
handshake and the node does not answer; the next one (the client is now offline and
raises at once) says "127.0.0.1:P accepted the TCP connection but did not complete the
ZeroMQ handshake", which is false for this client: its connection completed the
handshake long before (it had pinged and read a config).  An operator reading the two
lines of one process gets two different diagnoses of one fault.

README "Consumers", Outage: a read the client holds nothing for "raises
`ServerUnreachableError` at once, naming the servers"; the client's errors name each
attempt and what it means ("it reached ... (the connection completed its handshake: a
node runs there and took this client's key), which did not answer: it may be stopped").

Observed in 6 of 6 runs (both orders, by script twice and this test twice): the first error says
"it reached 127.0.0.1:P (the connection completed its handshake ...)"; the second
"... accepted the TCP connection but did not complete the ZeroMQ handshake: the node there
may be stopped (SIGSTOP, a paused VM), hung or overloaded".  (The same fast path names
"refused the connection (nothing listens there)" after a key mismatch: F1.)
"""

from __future__ import annotations

import signal
import tempfile

import pytest
from helpers import NodeProcess, free_port_pair

from meshreg import Client
from meshreg.errors import MeshregError

pytestmark = pytest.mark.timeout(60)



@pytest.mark.parametrize("first", ["subscribe", "config_listen"])
def test_offline_error_keeps_the_handshake_diagnosis(first: str) -> None:
    with tempfile.TemporaryDirectory(prefix="r59-") as tmp:
        node = NodeProcess("--data-dir", tmp, port=free_port_pair()).start()
        client = Client([node.address], timeout=2.0, attempt_timeout=0.5)
        try:
            client.ping()
            client.config_get("warm.yaml")  # the connection is up and used
            node.freeze()
            calls = {
                "subscribe": lambda: client.subscribe("orders", lambda xs: None),
                "config_listen": lambda: client.config_listen("app.yaml", lambda c, r: None),
            }
            second = "config_listen" if first == "subscribe" else "subscribe"
            texts = {}
            for name in (first, second):
                with pytest.raises(MeshregError) as caught:
                    calls[name]()
                texts[name] = str(caught.value)
            assert "completed its handshake" in texts[first], texts[first]
            assert "did not complete the ZeroMQ handshake" not in texts[second], texts[second]
            assert "no connection to them completed its handshake" not in texts[second]
        finally:
            node.signal(signal.SIGCONT)
            client.close()
            node.cleanup()
