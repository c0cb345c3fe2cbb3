"""review54 F1: a client key that is not in the ACL, given two servers, kills the CLI
client's I/O thread: `meshreg ping --key stranger.key --server-key cluster.pub -s A,B`
says "the meshreg client's I/O thread stopped (ZMQError: Socket operation on non-socket;
...); create a new Client, and report this if it happens again" instead of the refusal.

README "Security": an unknown key "cannot connect at all"; docs/SECURITY.md: "any other
key | refused at the handshake".  With one server the CLI says so clearly ("the handshake
with meshreg server(s) A failed (A said: authentication refused (ZAP status 400)) ... is
this client's key in the node's ACL?").  With two (README's own example exports
MESHREG_SERVERS=127.0.0.1:7800,127.0.0.1:7810), the CLI's client (``fail_when_refused``)
fails over inside client/agent ``_dealer_events``: ``server_refused`` closes the DEALER's
monitor socket, and the loop goes on reading that closed monitor
(``recv_monitor_message`` -> ZMQError ENOTSOCK), which ends the I/O thread.  By hand:
3 runs of 3 with `-s 127.0.0.1:7810,127.0.0.1:7820`, and with `-s 7800,7810`; the
Python API with `Client([A, B], ..., fail_when_refused=True)` (the parameter the README
lists) raises ClientClosedError (3 of 3), not ServerUnreachableError, and the client is
dead for every later call.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from r54lib import cli, keyed_pair

from meshreg import Client
from meshreg.errors import MeshregError, ServerUnreachableError


@pytest.mark.timeout(60)
def test_unknown_key_with_two_servers_is_refused_not_a_crash(tmp_path: Path) -> None:
    nodes = keyed_pair(tmp_path, "stranger")
    try:
        servers = ",".join(n.address for n in nodes)
        outcomes = []
        for _ in range(3):
            out = cli("ping", "--key", "stranger.key", "--server-key", "cluster.pub",
                      "-s", servers, cwd=tmp_path)  # fmt: skip
            outcomes.append(out.stderr.strip())
            assert out.returncode == 1, out
        crashed = [o for o in outcomes if "I/O thread stopped" in o]
        assert not crashed, (
            f"{len(crashed)} of 3 runs of `meshreg ping` with a key outside the ACL and two "
            f"servers ended with the client's I/O thread crashing instead of saying the key "
            f"was refused: {crashed[0]}"
        )
        for o in outcomes:
            assert "ACL" in o or "refused" in o, o
        # the same through the Python API (README: "a write that never left the client
        # (... the keys differ) raises a plain ServerUnreachableError with .unsent true")
        client = Client([n.address for n in nodes], key=str(tmp_path / "stranger.key"),
                        server_key=str(tmp_path / "cluster.pub"), fail_when_refused=True,
                        handle_sigterm=False)  # fmt: skip
        try:
            with pytest.raises(MeshregError) as raised:
                client.ping()
        finally:
            client.close()
        assert isinstance(raised.value, ServerUnreachableError), (
            f"Client(fail_when_refused=True) with a key outside the ACL and two servers: "
            f"{type(raised.value).__name__}: {raised.value}"
        )
    finally:
        for node in nodes:
            node.cleanup()
