"""review13b: a damaged registry-state.sqlite3 (service settings, overrides)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from helpers import NodeProcess, free_port_pair, meshreg_cmd, wait_until


def test_corrupt_registry_state_file_error_says_what_to_do(tmp_path: Path) -> None:
    """A node whose registry-state.sqlite3 is damaged refuses to start (fine: it is not
    silently dropped), but the error only says "check --data-dir and its permissions": it
    should say the file is damaged and what to do (move it aside: the peers hold a copy;
    a lone node loses only its settings and overrides)."""
    data = tmp_path / "d"
    port = free_port_pair()
    node = NodeProcess("--data-dir", str(data), port=port)
    try:
        node.start()
        done = subprocess.run(
            meshreg_cmd("service-set", "s1", "--protect-threshold", "0.5", "-s", node.address),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        wait_until(lambda: (data / "registry-state.sqlite3").exists(), timeout=5)
        node.stop()
    finally:
        node.cleanup()
    with open(data / "registry-state.sqlite3", "r+b") as fh:
        fh.write(b"garbage!" * 16)
    out = subprocess.run(
        meshreg_cmd("node", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data)),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode != 0
    err = out.stderr.splitlines()[-1]
    assert "registry-state.sqlite3" in err, err
    assert any(w in err for w in ("move", "remove", "delete", "rename")), err
