"""A per-hop trace of the config write path, for measuring where a publish's time goes.

Off unless ``MESHREG_CONFIG_TRACE`` names a file prefix: a node then appends one line per
event to ``<prefix>.<member with ':' as '_'>``: ``<CLOCK_MONOTONIC ns> <event> <data id>
<revision> [peer]`` (the monotonic clock is the same for every process of a machine, so
the traces of a local cluster line up).  Events: ``write_in`` (a client write arrived at
the owner; revision 0), ``records_out`` (its records handed to the peer sockets),
``saved`` (a version's commit done here, as the loop sees it), ``marked`` (a committed
flag's), ``ack_in``, ``commit_out``, ``reply``, ``record_in``, ``ack_out``,
``commit_in``, ``notify``.
Not for production: a line per event, flushed when the buffer fills and at exit.
"""

from __future__ import annotations

import atexit
import os
import time
from typing import IO

from meshreg.configcenter.model import ConfigKey

ENV = "MESHREG_CONFIG_TRACE"


class HopTrace:
    def __init__(self, member: str) -> None:
        prefix = os.environ.get(ENV, "")
        self.on = bool(prefix)
        self._out: IO[str] | None = None
        if self.on:
            self._out = open(f"{prefix}.{member.replace(':', '_')}", "a", buffering=1 << 20)  # noqa: SIM115
            atexit.register(self.close)

    def __call__(self, event: str, key: ConfigKey, revision: int, peer: str = "") -> None:
        if self._out is not None:
            self._out.write(f"{time.monotonic_ns()} {event} {key.data_id} {revision} {peer}\n")

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
