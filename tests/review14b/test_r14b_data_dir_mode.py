"""review14b: the data directory holds the configuration center's contents (configs are
where applications keep connection strings and passwords, Nacos's main use) and the
operators' registry state. Outside the systemd unit (StateDirectoryMode=0700), a node
creates it with the process umask: on a usual 022, every local user can read every
config. Key files get 0600 and a warning when readable by others; the configs get
neither."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from helpers import NodeProcess, run_cli, wait_until


def test_the_default_data_dir_and_config_database_are_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node with the default data dir (~/.local/state/meshreg/HOST_PORT), umask 022; a
    config is published. Neither the directory nor the database may be readable by other
    users.

    On main (9b209f2): the directory is 0755 and configs.sqlite3 (and its -wal) 0644."""
    state = tmp_path / "state"  # as ~/.local/state usually is: 0755
    state.mkdir(mode=0o755)
    monkeypatch.setenv("XDG_STATE_HOME", str(state))  # (the suite sets it; a user has HOME)
    old = os.umask(0o022)
    node = NodeProcess()
    try:
        node.start()
        done = run_cli("config", "publish", "db.yaml", "--content", "password: hunter2",
                       "-s", node.address)  # fmt: skip
        assert done.returncode == 0, done.stderr
        base = state / "meshreg"
        data = wait_until(lambda: next(base.glob("*/configs.sqlite3"), None), 5).parent
        modes = {
            str(p.relative_to(tmp_path)): stat.filemode(p.stat().st_mode)
            for p in [data, *sorted(data.iterdir())]
        }
        dir_open = data.stat().st_mode & stat.S_IXOTH  # others may enter the data dir
        readable = [p.name for p in data.iterdir() if p.stat().st_mode & stat.S_IROTH]
        assert not (dir_open and readable), f"readable by every local user: {modes}"
    finally:
        os.umask(old)
        node.cleanup()
