"""review22 F2 (low): the new refusal of a peer without a port (review19 F2) tells an IPv6
operator to write the very form it refuses.

CHANGELOG (Unreleased): "A peer given without a port (`peers = ["127.0.0.1"]`) is refused
naming it"; the refusal on other addresses "writes `[v6]:port`".  For `--peer ::1` the
message says "give every peer as host:port (... e.g. ::1:7800)"; following it
(`--peer ::1:7800`) is refused again: "peer '::1:7800' has no port ... e.g. ::1:7800:7800".
The example must be `[::1]:7800`, the form that works.
"""

from __future__ import annotations

import subprocess

import pytest
from helpers import free_port_pair, meshreg_cmd


@pytest.mark.timeout(60)
@pytest.mark.parametrize("peer", ["::1", "[::1]", "::1:7800"])
def test_an_ipv6_peer_without_port_is_told_the_bracketed_form(peer: str, tmp_path) -> None:
    out = subprocess.run(
        meshreg_cmd("node", "--host", "::1", "--port", str(free_port_pair()), "--peer", peer,
                    "--data-dir", str(tmp_path)),
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode != 0, out.stderr
    # (since session 40 ``::1:7800`` is refused as ambiguous, "takes brackets", before
    # its port is looked at; the example that works must still be given)
    assert "has no port" in out.stderr or "takes brackets" in out.stderr, out.stderr
    assert "[::1]:7800" in out.stderr, (
        f"--peer {peer}: the refusal's example is not the bracketed form that works:\n"
        + out.stderr
    )
