"""review24 F7: an unusable ``cache_dir`` logs one WARNING per change, without limit.

The client's own rule (client/session.py, "Logging"): "Problems are logged at most once
per kind and server per LOG_INTERVAL (with a count of those suppressed), never once per
instance"; the node's README promises the same for its rejected requests.  A disk-cache
directory that cannot be written (a read-only mount, a full disk, a path component that
is a file) makes every saved change log "could not write the disk cache for ...": one
line per change per service, for as long as the process runs.  Here: 100 changes of one
service -> about 100 identical warnings within a second.
"""

from __future__ import annotations

import logging

import pytest
from helpers import NodeProcess, wait_until

from meshreg import Client


@pytest.mark.timeout(60)
def test_a_broken_cache_dir_is_reported_once_not_per_change(tmp_path, caplog) -> None:
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "public").write_text("a file where a directory should be")
    node = NodeProcess("--data-dir", str(tmp_path / "d"))
    prov = cons = None
    try:
        node.start()
        prov = Client([node.address])
        prov.register("bc", "10.16.0.1", 80)
        cons = Client([node.address], cache_dir=str(tmp_path / "cache"))
        seen: list[int] = []
        cons.subscribe("bc", lambda xs: seen.append(len(xs)))
        with caplog.at_level(logging.WARNING, logger="meshreg.client"):
            for i in range(100):
                prov.register("bc", f"10.16.1.{i % 250}", 81 + i)
            wait_until(lambda: seen and seen[-1] == 101, 20, 0.02, "all 100 changes seen")
            wait_until(lambda: sum("could not write the disk cache" in r.getMessage()
                                   for r in caplog.records) > 0, 5, 0.02, "a warning")  # fmt: skip
        lines = [r.getMessage() for r in caplog.records
                 if "could not write the disk cache" in r.getMessage()]  # fmt: skip
        assert len(lines) <= 3, (
            f"{len(lines)} 'could not write the disk cache' warnings for 100 changes of one "
            f"service (no rate limit); first: {lines[0]!r}"
        )
    finally:
        for cl in (cons, prov):
            if cl is not None:
                cl.close(timeout=3)
        node.cleanup()
