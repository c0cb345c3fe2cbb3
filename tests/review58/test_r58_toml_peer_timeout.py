"""review58 F6 (low): `peer_timeout` in node.toml's [cluster] table below 0.51 s is refused
at start with "beacon_interval must be > 0 and below peer_timeout" (no values, a setting
the operator did not write), while the same value as `--peer-timeout` starts fine; and an
out-of-bounds `peer_timeout = -1` gets the same message instead of its bounds.

README "A cluster": "`--peer-timeout` (3 s) is how long a silent peer stays up. The same
settings go in the config file's `[cluster]` table (`node_id`, `peers`,
`peer_timeout`)."  README "The node": "`peer_timeout` 0.2..600 s, `beacon_interval`
0.01..60 s (below `peer_timeout`)"; a bad value elsewhere is named with its bounds
("peer_timeout must be in 0.2..600 seconds, got 700.0").

Observed, deploy/node.toml with `[cluster] peer_timeout = X` (beacon_interval not set):
X = 0.3, 0.5, 0.1, -1: "meshreg: error: config file t5.toml: beacon_interval must be > 0
and below peer_timeout", exit 1; `meshreg node --peer-timeout 0.3 ...`: starts, "peer
timeout 0.3s; heartbeat every 0.1s".  The flag derives the beacon from the timeout
(config.py `with_overrides`: peer_timeout / 6); the file keeps the 0.5 s default, and
ClusterPolicy's own check (core/distro.py) fires before `_validate_timings` can name the
values.  Expected: the file behaves as the flag (or at least the error names both values,
that beacon_interval defaults to 0.5 s, and what to set).
"""

from __future__ import annotations

import subprocess

import pytest
from helpers import HOST, NodeProcess, free_port_pair, meshreg_cmd

TOML = """[node]
host = "127.0.0.1"
port = {port}
data_dir = "{data}"

[cluster]
peers = ["127.0.0.1:{port}", "127.0.0.1:{other}"]
peer_timeout = {timeout}
"""


def _conf(tmp_path, port: int, timeout: str) -> str:
    path = tmp_path / "node.toml"
    path.write_text(TOML.format(port=port, other=free_port_pair(), data=tmp_path / "d",
                                timeout=timeout))  # fmt: skip
    return str(path)


@pytest.mark.timeout(60)
def test_peer_timeout_in_the_file_starts_as_the_flag_does(tmp_path) -> None:
    port = free_port_pair()
    flag = NodeProcess("--peer", f"{HOST}:{free_port_pair()}", "--peer-timeout", "0.3",
                       "--data-dir", str(tmp_path / "f"), port=free_port_pair())  # fmt: skip
    node = NodeProcess("--config", _conf(tmp_path, port, "0.3"), port=port)
    try:
        flag.start()  # the flag: fine
        node.start()  # the same value in [cluster]: "node exited early (1)"
    finally:
        flag.cleanup()
        node.cleanup()


@pytest.mark.timeout(60)
def test_out_of_bounds_peer_timeout_in_the_file_is_named_with_its_bounds(tmp_path) -> None:
    port = free_port_pair()
    out = subprocess.run(meshreg_cmd("node", "--config", _conf(tmp_path, port, "-1")),
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    assert out.returncode != 0, out
    last = out.stderr.strip().splitlines()[-1]
    assert "peer_timeout must be in 0.2..600" in last, (
        f"peer_timeout = -1 in [cluster]: the error does not give its bounds: {last!r}"
    )
