"""review57 F3 (low): a node that is stopped (SIGSTOP, a VM freeze: the brief's "SIGSTOP a
node past every timeout") is reported as a node that does not run or a wrong address /
key: "no reply from meshreg server(s) A within 2s; no connection to them completed its
handshake, so the request never left this client; is `meshreg node` running there? check
--server / MESHREG_SERVERS; if the node runs with --key, give this client key= and
server_key=".  The TCP connection *was* accepted (the frozen node's listening socket is
there: a port where nothing listens gets the different "refused the connection (nothing
listens there)"), so the likely cause - a node that is stopped or overloaded - is the one
the hint leaves out.

review34's nit fixed this for a request the node took ("it reached A ... it may be
stopped, overloaded or waiting on its peers"), not for one whose connection was accepted
and never answered the handshake: a fresh CLI against a frozen node, and a long-lived
client after its heartbeat reconnects (a config listener on the frozen node logged "it
may be stopped" once, then "is `meshreg node` running there? check --server" every 10 s
while it stayed frozen; seen in 3 runs).  README: "A node that cannot be reached gives a
one-line error naming the address"; the brief: errors must say what to try.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest
from helpers import NodeProcess, run_cli


@pytest.mark.timeout(60)
def test_a_frozen_node_is_not_reported_as_one_that_does_not_run(
    start_node: Callable[..., NodeProcess],
) -> None:
    node = start_node()
    made = run_cli("config", "publish", "r57-frz", "--content", "x", "-s", node.address)
    assert made.returncode == 0
    node.freeze()
    try:
        out = run_cli("config", "get", "r57-frz", "-s", node.address, "--timeout", "1.5")
    finally:
        node.signal(signal.SIGCONT)
    assert out.returncode == 1
    err = out.stderr
    assert "stopped" in err or "overloaded" in err or "frozen" in err, (
        "a node whose port accepted the connection but which is frozen is reported only "
        "as not running / a wrong address or key: " + err
    )
