"""The node's GC policy (runtime/gc_policy): no automatic full collections, and in force
before the configuration center loads its table from SQLite at start (a big table loaded
under Python's thresholds ran 8 full collections: 3-4 s of a 16-18 s load of 300,000
versions; docs/CONFIG.md "What is left")."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import free_port_pair

from meshreg.config import NodeConfig
from meshreg.configcenter.core import ConfigStore
from meshreg.configcenter.model import ConfigKey
from meshreg.configcenter.sqlite_store import SqliteConfigStore, database_path
from meshreg.runtime.gc_policy import NEVER, avoid_full_collections
from meshreg.runtime.node import NodeRuntime

KEY = ConfigKey("public", "DEFAULT_GROUP", "app.yaml")


@pytest.fixture
def restore_gc() -> Iterator[None]:
    """The policy is process-wide: put this test process back as it was."""
    thresholds, interval = gc.get_threshold(), sys.getswitchinterval()
    gc.set_threshold(700, 10, 10)  # Python's defaults, whatever ran before
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        sys.setswitchinterval(interval)


def test_the_policy_turns_off_full_collections_only(restore_gc: None) -> None:
    assert avoid_full_collections() == (700, 10, NEVER)
    assert gc.get_threshold() == (700, 10, NEVER)
    assert gc.isenabled()  # the young generations still collect


def test_a_node_is_under_the_policy_before_it_loads_its_configs(
    restore_gc: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ConfigStore("n1")
    entry = store.publish(KEY, "a: 1", now=1000.0)
    with SqliteConfigStore(database_path(tmp_path)) as db:
        db.save([entry])
    seen: list[tuple[int, int, int]] = []
    load_into = SqliteConfigStore.load_into

    def spy(self: SqliteConfigStore, into: ConfigStore) -> Any:
        seen.append(gc.get_threshold())
        return load_into(self, into)

    monkeypatch.setattr(SqliteConfigStore, "load_into", spy)
    config = NodeConfig(host="127.0.0.1", port=free_port_pair(4), data_dir=str(tmp_path))
    rt = NodeRuntime(config, clock=lambda: 1000.0, avoid_full_gc=True)
    try:
        assert seen == [(700, 10, NEVER)]  # loaded with full collections already off
        assert rt.configs.store.current(KEY) == entry
    finally:
        rt.close()


def test_an_embedded_node_leaves_the_process_alone(restore_gc: None, tmp_path: Path) -> None:
    config = NodeConfig(host="127.0.0.1", port=free_port_pair(4), data_dir=str(tmp_path))
    rt = NodeRuntime(config, clock=lambda: 1000.0)  # avoid_full_gc off: not a node process
    try:
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        rt.close()
