"""One node per data directory: an exclusive lock, held for the node's life.

Two nodes on one database would each count themselves a majority of a cluster of one
and confirm config writes nobody else saw; the versions then reach the real cluster
when its member restarts from that file (docs/CONFIG.md, "Durability").  The lock is
``flock`` on ``<data_dir>/LOCK``: the kernel drops it when the process dies (SIGKILL
included), so a crashed node never leaves a stale lock behind.  The file holds the
holder's pid and address, for the error the next one gets.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

from meshreg.errors import ConfigError

LOCK_FILE_NAME = "LOCK"
log = logging.getLogger("meshreg.node")


class DataDirLock:
    """Holds ``<directory>/LOCK`` until :meth:`release` (or the process ends)."""

    def __init__(self, directory: str, holder: str) -> None:
        """``holder``: who takes it (the node's address), written for the next one.
        Raises ConfigError naming the directory and the holder if it is taken."""
        path = Path(directory)
        self.path = path / LOCK_FILE_NAME
        try:
            # its own user only (configs hold connection strings and passwords); the
            # parents as the umask says (review14b: 0755 and 0644 before)
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            open_to = path.stat().st_mode & 0o077
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigError(
                f"cannot use data dir {path}: {exc.strerror}; check --data-dir (data_dir in "
                "[node]) and its permissions"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            held_by = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError(
                f"data dir {path} is in use by another meshreg node ({held_by}; lock "
                f"{self.path}): every node needs a data dir of its own, or two nodes would "
                "each confirm config writes alone; give this one another --data-dir "
                "(data_dir in [node]); a second node on this host also needs its own "
                "--port (the default data dir is named after the host and port)"
            ) from None
        if open_to:
            log.warning(
                "data dir %s is open to other local users (mode %o): it holds the configs; "
                "chmod 700 it (the node creates its data dir so)",
                path,
                path.stat().st_mode & 0o777,
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, node {holder}\n".encode(), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


__all__ = ["LOCK_FILE_NAME", "DataDirLock"]
