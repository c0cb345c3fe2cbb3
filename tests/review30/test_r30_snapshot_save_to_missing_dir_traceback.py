"""review30: `meshreg snapshot save --out DIR/F` where DIR does not exist (a backup volume
not mounted, a typo in the cron line) dies with a Python traceback (FileNotFoundError
from tempfile.mkdtemp) instead of meshreg's "cannot write the snapshot ..." error.

runtime/snapshot.py raises ConfigError naming the file for every write failure of the
snapshot itself (``except OSError`` around the write), but the temporary directory is
made beside the target *before* that ``try``.  A cron job's mail shows a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from helpers import meshreg_cmd  # noqa: E402


@pytest.mark.timeout(60)
def test_save_into_a_missing_directory_is_a_clean_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    data.mkdir()
    (data / "configs.sqlite3").write_bytes(b"")  # a data dir (the command looks for it)
    out = tmp_path / "not-mounted" / "backup.snap"
    proc = subprocess.run(
        meshreg_cmd("snapshot", "save", "--data-dir", str(data), "--out", str(out)),
        capture_output=True, text=True, timeout=50,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-500:]
    assert str(out) in proc.stderr, proc.stderr[-500:]
