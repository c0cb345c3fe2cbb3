"""review18: `meshreg config gray --client HOST` accepts entries that can match no client
(a host name such as `localhost`, `*`, a CIDR `127.0.0.1/32`, a zero-padded IP), exits 0
and serves the gray version to nobody; a canary host named by its host name never gets
it, and nothing says so.

docs/CONFIG.md, Model, "Gray release": "a list of client hosts (the IP address of the
client's connection as the node sees it; an entry with a port is refused, since the node
never knows a client's port: `check_gray_rule` ...)". The same reasoning (an entry that
matches no one) applies to these, which are taken silently; the CLI's help says
"HOST: the IP address of a client".
"""

from __future__ import annotations

import pytest
from helpers import run_cli


@pytest.mark.parametrize("host", ["localhost", "*", "127.0.0.1/32"])
def test_gray_client_entry_matching_no_one_is_refused(node, host: str) -> None:
    assert (
        run_cli("config", "publish", "h.yaml", "--content", "main", "-s", node.address).returncode
        == 0
    )
    gray = run_cli(
        "config", "gray", "h.yaml", "--content", "gray", "--client", host, "-s", node.address
    )
    got = run_cli("config", "get", "h.yaml", "-s", node.address).stdout.strip()
    # this client runs on 127.0.0.1: either the entry selects it, or it is refused
    assert gray.returncode != 0 or got == "gray", (
        f"`config gray --client {host}` was accepted (exit 0: {gray.stdout.strip()!r}) but "
        f"selects nobody: a client on 127.0.0.1 (localhost) is served {got!r}"
    )
