"""review22 F1: `meshreg register` (the sidecar) whose key the node's ACL does not list
retries forever, printing "no reply ... is `meshreg node` running there?", instead of
exiting 1.

README ("The command line"): `meshreg register` "while no node answers, it says so and
tries again (a refusal exits 1)"; CHANGELOG (Unreleased, review20): "Refusals (an ACL, bad
arguments) still exit 1 at once."  A client key the node refuses (ZAP status 400: not in
`--acl`) is an ACL refusal, and the client knows it: it logs "refused this client's
notification connection (authentication refused (ZAP status 400))" for its SUB socket.
But the server DEALER's handshake only ever reports success (or nothing), so the write is
"unsent", a ServerUnreachableError, which the new loop retries with a doubling pause, for
ever (a sidecar in a crash-looping pod spec would never surface the misconfiguration).
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
from helpers import NodeProcess, meshreg_cmd, wait_until

ACL = """[[client]]
name = "app"
key_file = "app.pub"
allow = [{ namespace = "public", access = "write" }]
"""


@pytest.mark.timeout(90)
def test_a_sidecar_whose_key_the_acl_refuses_exits_1(tmp_path: Path) -> None:
    for name in ("cluster", "app", "rogue"):
        subprocess.run(meshreg_cmd("keygen", str(tmp_path / name)), check=True,
                       capture_output=True, timeout=30)  # fmt: skip
    (tmp_path / "acl.toml").write_text(ACL)
    node = NodeProcess("--key", str(tmp_path / "cluster.key"), "--acl",
                       str(tmp_path / "acl.toml"), "--data-dir", str(tmp_path / "d"))  # fmt: skip
    sidecar = None
    try:
        node.launch()
        # readiness: the app key answers a register through the CLI (one-shot)
        def pinged() -> bool:
            ok = subprocess.run(
                meshreg_cmd("ping", "-s", node.address, "--key", str(tmp_path / "app.key"),
                            "--server-key", str(tmp_path / "cluster.pub")),
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            return ok.returncode == 0

        wait_until(pinged, 20, 0.3, "the node answers the app key")
        sidecar = subprocess.Popen(
            meshreg_cmd("register", "orders", "10.0.0.5:8080", "-s", node.address,
                        "--key", str(tmp_path / "rogue.key"),
                        "--server-key", str(tmp_path / "cluster.pub"), "--timeout", "2"),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            out, _ = sidecar.communicate(timeout=25)  # 2 s time-out, a refusal exits at once
            rc = sidecar.returncode
        except subprocess.TimeoutExpired:
            sidecar.send_signal(signal.SIGINT)
            out, _ = sidecar.communicate(timeout=15)
            rc = None
        assert rc == 1, (
            "the sidecar, its key refused by the node's ACL (ZAP 400), was still retrying "
            f"after 25 s (README: 'a refusal exits 1'); its output:\n{out[-2500:]}"
        )
    finally:
        if sidecar is not None and sidecar.poll() is None:
            sidecar.kill()
            sidecar.wait(5)
        node.cleanup()
