"""review54 F5: `meshreg register` pointed by mistake at a node's peer port (P+3, README
"A node uses four ports") registers the instance, then exits 1 with "the node at P+3 sent
a malformed reply: 3 frames instead of ['', body]; is it a meshreg node of a compatible
version?", and leaves the instance registered and listed healthy (nobody beats for it, nor
deregisters it: it lingers unhealthy_after + evict_after, 45 s at the defaults).

README, the command table: `register` "register and beat in the foreground until
SIGINT/SIGTERM, then deregister; ... (a refusal exits 1)".  A command that says it failed
applied its write and left it behind; the message sends the user after a version
mismatch instead of naming the port (the node does know: `ping` on P+3 gets "unknown op
'ping' on the peer port").  The peer port of a node without a key takes `register`
(PROTOCOL.md 2.x: forwarded writes) and answers it in the three frames of a forward
(`[forward id, "", reply, result]`), which the client cannot read.  By hand: node on 7870
with --peer, `meshreg register z 10.6.0.1:1 -s 127.0.0.1:7873` -> exit 1, then
`meshreg instances z -s 127.0.0.1:7870` -> "10.6.0.1:1 DEFAULT 1 healthy" 10 s later.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
from helpers import NodeProcess, free_port_pair, meshreg_cmd, run_cli, wait_until


@pytest.mark.timeout(60)
def test_register_on_the_peer_port_leaves_nothing_behind(tmp_path: Path) -> None:
    port = free_port_pair()
    other = free_port_pair()  # listed, never started: the node binds its peer ports
    node = NodeProcess("--peer", f"127.0.0.1:{port}", "--peer", f"127.0.0.1:{other}",
                       "--data-dir", str(tmp_path / "data"), port=port)  # fmt: skip
    try:
        node.start()
        proc = subprocess.Popen(
            meshreg_cmd("register", "z", "10.6.0.1:1", "-s", f"127.0.0.1:{port + 3}"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:  # still running: it registered; stop it
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=10)
        # a node whose listed peer never came answers reads once that peer has been silent
        # a peer timeout (3 s) from its start; until then "catching up ... ask again in a
        # moment" (CI of f01261d: the register on the peer port failed fast, and the read
        # came before)
        answers: list[subprocess.CompletedProcess[str]] = []

        def read() -> bool:
            answers.append(run_cli("instances", "z", "--all", "--json", "-s", node.address))
            return answers[-1].returncode == 0

        wait_until(read, 20.0, 0.2, "the node to answer `instances` (its peer never starts)")
        listed = answers[-1]
        left = json.loads(listed.stdout or "[]")
        if proc.returncode != 0:
            assert not left, (
                f"`meshreg register` on the peer port exited {proc.returncode} ({err.strip()}) "
                f"but left the instance registered: {left}"
            )
            assert "compatible version" not in err, (
                f"a register sent to the peer port P+3 is blamed on a version mismatch: "
                f"{err.strip()}"
            )
    finally:
        node.stop()
        node.cleanup()
