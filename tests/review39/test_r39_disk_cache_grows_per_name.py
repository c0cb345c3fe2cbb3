"""review39 F2: a consumer's disk cache (``Client(cache_dir=...)``) keeps one file per
service name it ever read, for good: services that no longer exist anywhere (every
instance deregistered, the node no longer lists them) keep their ``.json`` file (an empty
list), and nothing ever removes it, not the view's drop after 5 idle minutes, not
``close()``, not a later client on the same directory.  A consumer that reads churning
names (per-deploy or per-tenant services) grows its directory by one file (and one
directory per new namespace/group) per name, without bound.

README "Disk cache" (README.md:176-185) says each service's last list is written; no
limit or expiry is documented for the directory (the in-memory view has one: README.md:
170-174, "dropped" after 5 minutes unread).  client/disk_cache.py has no removal of a
service file at all (only ``save_config(None)`` unlinks a config's file).
By hand (/tmp/r39/diskcache.py): 200 services read then deregistered -> 398 files
(200 service files, 198 config files of deleted data ids), still there after close() and
after a new client on the same directory.

Fixed: an emptied list removes the service's file (and the directories left empty).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import FAST_TIMINGS
from helpers import wait_until

from meshreg.client import Client

ROUND = 30  # distinct service names a round reads


def _files(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


def _round(node: str, cache: Path, tag: str) -> None:
    prov = Client([node], timeout=5, handle_sigterm=False)
    cons = Client([node], timeout=5, handle_sigterm=False, cache_dir=cache)
    try:
        for i in range(ROUND):
            prov.register(f"{tag}-{i}", "127.0.0.1", 40000)
            assert cons.instances(f"{tag}-{i}")  # read: cached, written to disk
        # each read's list is on disk (written by the cache's own thread: waited for)
        wait_until(lambda: _files(cache) >= ROUND, 10, what=f"{ROUND} lists written")
        for i in range(ROUND):
            prov.deregister(f"{tag}-{i}", "127.0.0.1", 40000)
        wait_until(
            lambda: not any(s.startswith(f"{tag}-") for s in prov.services()),
            15, what=f"the node to drop the {tag}-* services",
        )  # fmt: skip
        # the consumer is pushed each emptied list: its file goes (it held one per name
        # ever read, for good, before the fix)
        wait_until(lambda: _files(cache) == 0, 15,
                   what=f"the {tag}-* files removed: {_files(cache)} left")  # fmt: skip
    finally:
        cons.close()
        prov.close()


@pytest.mark.timeout(90)
def test_cache_dir_does_not_grow_with_every_name_ever_read(
    start_node: object, tmp_path: Path
) -> None:
    node = start_node(*FAST_TIMINGS)  # type: ignore[operator]
    cache = tmp_path / "cache"
    _round(node.address, cache, "first")
    after_first = _files(cache)
    _round(node.address, cache, "second")  # the same workload, other names
    after_second = _files(cache)
    # the first round's services exist nowhere any more; a steady workload of churning
    # names must not grow the directory round after round
    assert after_second <= after_first, (
        f"{after_first} files after reading {ROUND} services that were then removed, "
        f"{after_second} after {ROUND} more: one file per name ever read, never removed"
    )
