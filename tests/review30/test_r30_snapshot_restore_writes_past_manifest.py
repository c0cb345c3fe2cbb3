"""review30: `meshreg snapshot restore` of a tampered archive writes a member's whole
decompressed size into the data dir before it compares the size with the manifest.

runtime/snapshot.py promises the archive is checked "*before* it touches the data dir";
``_extract_checked`` streams every member into ``<data dir>/.restore-*/`` and checks size
and SHA-256 only after the last byte.  A 64 MiB member of zeros is 64 KiB gzipped: a
crafted (or corrupted) snapshot of a few hundred KiB whose manifest says 1,000 bytes
makes restore write gigabytes into the node's data dir (its disk) before refusing.  The
tar header gives the member's size, so the check can come first.

Shown under RLIMIT_FSIZE 8 MiB: the restore should refuse with the manifest message;
it instead dies writing ("File too large"), after 8 MiB."""

from __future__ import annotations

import hashlib
import io
import json
import os
import resource
import subprocess
import sys
import tarfile

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from helpers import meshreg_cmd  # noqa: E402

MEMBER_BYTES = 64 << 20  # what the archive really holds
CLAIMED = 1000  # what its manifest says


def _crafted(path: str) -> None:
    manifest = {
        "format": 1,
        "meshreg": "0.1.0",
        "created": "2026-12-04T00:00:00Z",
        "created_unix": 0,
        "data_dir": "/nowhere",
        "node": None,
        "files": {"configs.sqlite3": {"bytes": CLAIMED, "sha256": hashlib.sha256(b"").hexdigest()}},
        "counts": {},
    }
    body = json.dumps(manifest).encode()
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
        info = tarfile.TarInfo("configs.sqlite3")
        info.size = MEMBER_BYTES

        class Zeros(io.RawIOBase):
            left = MEMBER_BYTES

            def readable(self) -> bool:
                return True

            def readinto(self, b):  # type: ignore[no-untyped-def]
                n = min(len(b), self.left)
                b[:n] = bytes(n)
                self.left -= n
                return n

        tar.addfile(info, io.BufferedReader(Zeros(), 1 << 20))


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (8 << 20, 8 << 20))


@pytest.mark.timeout(120)
def test_restore_refuses_an_oversized_member_before_writing_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    archive = str(tmp_path / "crafted.snap")
    _crafted(archive)
    assert os.path.getsize(archive) < 1 << 20  # a small file
    data_dir = tmp_path / "data"
    proc = subprocess.run(
        meshreg_cmd("snapshot", "restore", archive, "--data-dir", str(data_dir)),
        capture_output=True,
        text=True,
        timeout=100,
        preexec_fn=_limit_file_size,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "does not match its manifest" in out, (
        f"restore wrote past the manifest's {CLAIMED} bytes before checking "
        f"(rc {proc.returncode}): {out[-600:]}"
    )
