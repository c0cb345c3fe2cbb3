"""review18: a `config_get` answered NOT_FOUND (the data id was deleted while this
process was not listening to it) leaves the data id's disk copy in `cache_dir`; in the
next outage, a `config_get` of it serves the deleted content (`from_cache` True),
though this very process (or the previous one on this cache_dir) was told it is gone.
A `config_listen` of the same data id does remove the copy.

docs/CONFIG.md "Disk (cache_dir)": "Every current version read or pushed is written to
<cache_dir>/+configs/... when its revision is not the one written last; a delete removes
the file." README ("Outage") serves what the client "holds ... on disk": a config deleted
at the source (a revoked credential, a feature switched off) comes back during an outage.
"""

from __future__ import annotations

import logging
from pathlib import Path

from meshreg import Client
from meshreg.errors import ServerUnreachableError


def test_config_get_not_found_removes_disk_copy(start_node, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.ERROR)
    node = start_node()
    cache = str(tmp_path / "cache")
    with Client([node.address]) as ops:
        ops.config_publish("app.yaml", "secret: 1\n")
    with Client([node.address], cache_dir=cache) as worker:
        assert worker.config_get("app.yaml").content == "secret: 1\n"
    with Client([node.address]) as ops:
        ops.config_delete("app.yaml")
    with Client([node.address], cache_dir=cache) as worker:  # the next run of the worker
        assert worker.config_get("app.yaml") is None  # deleted: the node says NOT_FOUND
    node.kill()
    with Client([node.address], cache_dir=cache, timeout=2) as worker:
        try:
            offline = worker.config_get("app.yaml")
        except ServerUnreachableError:  # no disk copy, no node: as documented
            offline = None
    assert offline is None, (
        f"config_get answered NOT_FOUND (deleted) online, then in the outage served the "
        f"deleted content {offline.content!r} from the disk copy (from_cache="
        f"{offline.from_cache}); files left: "
        f"{sorted(str(p.relative_to(cache)) for p in Path(cache).rglob('*.json'))}"
    )
    assert not list(Path(cache).rglob("*.json"))  # the copy went with the NOT_FOUND
