"""review17 F10 (low): the disk cache cannot hold a service or a config data id whose name
is 251..256 characters long (valid: PROTOCOL.md 1.7 allows 1..256), because the file is
named `<name>.json` and Linux file names are at most 255 bytes (ENAMETOOLONG). The client
logs "could not write the disk cache" on every change, and a process started while no node
answers has nothing to serve for it: the consumer is blind in an outage.

README, Consumers: "Disk cache. With cache_dir, each service's last known list is written
to <cache_dir>/<namespace>/<group>/<service>.json ... A process that starts while no node
answers serves those lists"; docs/CONFIG.md "Disk (cache_dir)" the same for configs."""

from __future__ import annotations

import logging
from pathlib import Path

from meshreg import Client

SERVICE = "s" * 256  # the longest valid name
DATA_ID = "d" * 256


def test_longest_valid_names_survive_an_outage_from_disk(
    start_node, tmp_path: Path, caplog
) -> None:
    caplog.set_level(logging.CRITICAL)
    node = start_node()
    cache = str(tmp_path / "cache")
    with Client([node.address]) as provider:
        provider.register(SERVICE, "10.0.0.1", 1)
        provider.config_publish(DATA_ID, "content")
        with Client([node.address], cache_dir=cache) as consumer:
            assert [i.address for i in consumer.instances(SERVICE)] == ["10.0.0.1:1"]
            assert consumer.config_get(DATA_ID).content == "content"
        node.kill()

    problems = []
    with Client([node.address], cache_dir=cache, timeout=1.5) as offline:
        try:
            got = [i.address for i in offline.instances(SERVICE)]
            if got != ["10.0.0.1:1"]:
                problems.append(f"instances of the 256-char service from disk: {got}")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"instances of the 256-char service: {type(exc).__name__}")
        try:
            info = offline.config_get(DATA_ID)
            if info is None or info.content != "content":
                problems.append(f"config_get of the 256-char data id from disk: {info}")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"config_get of the 256-char data id: {type(exc).__name__}")
    files = sorted(p.name[:12] + "..." for p in Path(cache).rglob("*.json"))
    assert not problems, (
        f"a process started while no node answers has no disk copy for names of 256 "
        f"characters (valid names; the cache file '<name>.json' is longer than 255 bytes): "
        f"{problems}; files in the cache: {files}"
    )
