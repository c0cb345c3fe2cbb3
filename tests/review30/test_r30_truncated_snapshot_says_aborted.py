"""review30: a truncated snapshot (a copy cut short: a full disk, an interrupted scp) makes
`meshreg snapshot inspect` and `snapshot restore` print only "Aborted!" (exit 1).

docs/OPERATIONS.md: "`meshreg snapshot inspect FILE` checks every checksum and says what
it holds"; runtime/snapshot.py turns every other damage into a message naming the file
("... does not match its manifest ...: the file is damaged").  A gzip stream that ends
early raises EOFError inside tarfile, which nothing catches; click takes an EOFError for
the user's Ctrl-D and prints "Aborted!".  An operator checking last night's backup is told
nothing about the file."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from helpers import meshreg_cmd  # noqa: E402


def _snapshot(path: str) -> None:
    floors = json.dumps({"pad": os.urandom(200_000).hex()}).encode()  # incompressible
    manifest = {
        "format": 1, "meshreg": "0.1.0", "created": "2026-12-04T00:00:00Z",
        "created_unix": 0, "data_dir": "/x", "node": None, "counts": {},
        "files": {"configs.purged-floors.json":
                  {"bytes": len(floors), "sha256": hashlib.sha256(floors).hexdigest()}},
    }  # fmt: skip
    body = json.dumps(manifest).encode()
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (("manifest.json", body), ("configs.purged-floors.json", floors)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.mark.timeout(60)
def test_inspect_of_a_truncated_snapshot_names_the_damage(tmp_path) -> None:  # type: ignore[no-untyped-def]
    whole = str(tmp_path / "whole.snap")
    _snapshot(whole)
    ok = subprocess.run(meshreg_cmd("snapshot", "inspect", whole), capture_output=True,
                        text=True, timeout=50)  # fmt: skip
    assert ok.returncode == 0 and "checksums ok" in ok.stdout, ok.stdout + ok.stderr
    cut = str(tmp_path / "cut.snap")
    with open(whole, "rb") as src, open(cut, "wb") as dst:
        data = src.read()
        dst.write(data[: len(data) // 2])
    proc = subprocess.run(meshreg_cmd("snapshot", "inspect", cut), capture_output=True,
                          text=True, timeout=50)  # fmt: skip
    out = (proc.stdout + proc.stderr).strip()
    assert proc.returncode != 0
    assert cut in out, f"inspect of a snapshot cut in half said only {out!r}"
