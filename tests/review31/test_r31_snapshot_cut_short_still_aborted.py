"""review31: a snapshot cut short within its first bytes (an interrupted copy) still makes
`meshreg snapshot inspect` and `snapshot restore` print only "Aborted!".

CHANGELOG (review30 F6): "truncated archives are clear errors"; snapshot.py
``_member_chunks`` now turns EOFError into "... is truncated or damaged", but
``_open_archive`` catches only OSError/TarError: ``tarfile.open(..., "r:gz")`` of a file
cut inside the first gzip block raises EOFError there, which click takes for Ctrl-D.
Seen: a 30-byte prefix of a valid snapshot -> stdout/stderr "Aborted!", exit 1, the file
not named."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "review30"))
from helpers import meshreg_cmd  # noqa: E402
from test_r30_truncated_snapshot_says_aborted import _snapshot  # noqa: E402


@pytest.mark.timeout(60)
@pytest.mark.parametrize("cut", [5, 30])
def test_snapshot_cut_in_its_first_bytes_is_named(tmp_path, cut: int) -> None:  # type: ignore[no-untyped-def]
    whole = str(tmp_path / "whole.snap")
    _snapshot(whole)
    short = str(tmp_path / "short.snap")
    with open(whole, "rb") as src, open(short, "wb") as dst:
        dst.write(src.read()[:cut])
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    os.chmod(data_dir, stat.S_IRWXU)
    for args in (("inspect", short), ("restore", short, "--data-dir", str(data_dir))):
        proc = subprocess.run(
            meshreg_cmd("snapshot", *args), capture_output=True, text=True, timeout=50
        )
        out = (proc.stdout + proc.stderr).strip()
        assert proc.returncode != 0
        assert short in out, f"snapshot {args[0]} of a {cut}-byte cut said only {out!r}"
