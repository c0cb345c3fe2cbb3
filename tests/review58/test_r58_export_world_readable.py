"""review58 F5 (low, security): `meshreg config export --out F` (OPERATIONS.md "Logical
backups: every namespace's configs") writes the namespace's configs, with up to 100 past
versions each and the deleted ones, to a file every local user can read (0644 under the
usual umask 022), while `meshreg snapshot save` writes the same contents 0600.

docs/OPERATIONS.md "Taking a snapshot": "It holds configs' contents (passwords, connection
strings): it is written `0600`; keep it as secret as the data dir."  The data dir is 0700
and its databases 0600 for the same reason (review14b).  The export, run from the same
runbook (its loop writes `configs-$ns.zip` into the current directory, e.g. a shared
backup host's working dir), holds those contents too, and their history.

Observed, twice (umask 022): `meshreg config export -n public --history 5 --out e2.zip`:
-rw-r--r-- e2.zip, `unzip -p` shows `pw=secret` (configs/DEFAULT_GROUP/db.properties and
history/...); `meshreg snapshot save --out s2.snap` beside it: -rw------- s2.snap.
Expected: the export written 0600 as the snapshot (the user may chmod it wider).
"""

from __future__ import annotations

import os
import stat
import zipfile

import pytest
from helpers import run_cli


@pytest.mark.timeout(60)
def test_config_export_is_written_0600_like_a_snapshot(start_node, tmp_path) -> None:
    node = start_node("--data-dir", str(tmp_path / "d"))
    out = run_cli("config", "publish", "db.properties", "--content", "password=hunter2",
                  "-s", node.address)  # fmt: skip
    assert out.returncode == 0, out
    old = os.umask(0o022)  # the usual umask of a login shell and of systemd services
    try:
        export = tmp_path / "configs-public.zip"
        got = run_cli("config", "export", "-n", "public", "--out", str(export),
                      "-s", node.address)  # fmt: skip
        assert got.returncode == 0, got
        snap = tmp_path / "backup.snap"
        saved = run_cli("snapshot", "save", "--data-dir", str(tmp_path / "d"), "--out", str(snap))
        assert saved.returncode == 0, saved
    finally:
        os.umask(old)
    with zipfile.ZipFile(export) as z:
        assert any(b"hunter2" in z.read(n) for n in z.namelist())  # the secret is in it
    snap_mode = stat.S_IMODE(snap.stat().st_mode)
    export_mode = stat.S_IMODE(export.stat().st_mode)
    assert snap_mode & 0o077 == 0, oct(snap_mode)
    assert export_mode & 0o077 == 0, (
        f"config export holds the configs' contents (a password here) and is written "
        f"{oct(export_mode)}, readable by every local user; the snapshot of the same data "
        f"is {oct(snap_mode)}"
    )
