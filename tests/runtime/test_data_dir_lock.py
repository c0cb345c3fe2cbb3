"""One node per data directory (runtime/data_dir): a second node on a running node's
data dir refuses to start, naming the holder; the lock dies with its process."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import HOST, NodeProcess, free_port_pair, meshreg_cmd, wait_until

from meshreg.errors import ConfigError
from meshreg.runtime.data_dir import DataDirLock


def test_the_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    first = DataDirLock(str(tmp_path / "d"), "127.0.0.1:7800")
    with pytest.raises(ConfigError, match=r"in use by another meshreg node \(pid \d+, node "):
        DataDirLock(str(tmp_path / "d"), "127.0.0.1:7900")
    first.release()
    DataDirLock(str(tmp_path / "d"), "127.0.0.1:7900").release()


def test_a_data_dir_that_cannot_be_made_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"cannot use data dir .*file/d.*--data-dir"):
        DataDirLock(str(tmp_path / "file" / "d"), "127.0.0.1:7800")


def test_a_second_node_on_a_running_nodes_data_dir_refuses_to_start(
    tmp_path: Path, start_node: Callable[..., NodeProcess]
) -> None:
    data = str(tmp_path / "data")
    first = start_node("--data-dir", data)
    port = free_port_pair()
    second = subprocess.run(
        meshreg_cmd("node", "--host", HOST, "--port", str(port), "--data-dir", data),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode != 0
    assert f"data dir {data} is in use by another meshreg node" in second.stderr, second.stderr
    assert f"node {first.address}" in second.stderr
    first.signal(signal.SIGKILL)  # the kernel drops the lock with the process
    assert first.proc is not None
    first.proc.wait(10)
    third = start_node("--data-dir", data)
    wait_until(lambda: (Path(data) / "LOCK").read_text().startswith("pid "), 5, what="lock")
    assert third.address in (Path(data) / "LOCK").read_text()
