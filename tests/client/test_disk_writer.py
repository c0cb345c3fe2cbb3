"""The disk cache's writer thread (review24 F3, F7): saves never run on the listeners'
thread, a service's newer list replaces the one waiting, close flushes, and a directory
that cannot be written is one warning per kind per LOG_INTERVAL, not one per change."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

import meshreg.client.disk_cache as disk_cache
from meshreg.client.disk_cache import DiskCache, DiskWriter
from meshreg.configcenter.model import ConfigKey
from meshreg.model import Instance, ServiceKey


def inst(ip: str) -> Instance:
    return Instance.from_wire({"ip": ip, "port": 80, "cluster": "DEFAULT", "weight": 1.0,
                               "enabled": True, "healthy": True, "metadata": {}})  # fmt: skip


KEY = ServiceKey("public", "DEFAULT_GROUP", "orders")


@pytest.mark.timeout(30)
def test_a_newer_list_replaces_the_one_waiting_and_close_writes_the_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = DiskCache(tmp_path)
    gate, entered = threading.Event(), threading.Event()
    written: list[tuple[ServiceKey, list[str]]] = []
    real = cache.save

    def save(key: ServiceKey, instances: list[Instance]) -> None:
        entered.set()
        assert gate.wait(10)  # the disk is slow: everything else waits behind this save
        written.append((key, [i.ip for i in instances]))
        real(key, instances)

    monkeypatch.setattr(cache, "save", save)
    writer = DiskWriter(cache)
    other = ServiceKey("public", "DEFAULT_GROUP", "pay")
    writer.save(other, [inst("10.0.0.9")])
    assert entered.wait(10)  # the first write is under way
    for n in range(1, 101):  # a burst on one service while the disk is busy
        writer.save(KEY, [inst(f"10.0.1.{n}")])
    gate.set()
    assert writer.flush(10)
    assert written == [(other, ["10.0.0.9"]), (KEY, ["10.0.1.100"])]  # one write, the last
    loaded = cache.load(KEY)
    assert loaded is not None and [i.ip for i in loaded[0]] == ["10.0.1.100"]
    writer.save(KEY, [inst("10.0.0.1")])  # after close: ignored
    assert len(written) == 2


@pytest.mark.timeout(30)
def test_a_directory_that_cannot_be_written_is_one_warning_per_kind(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "public").write_text("a file where a directory should be")
    (tmp_path / "+configs").write_text("and here")
    clock = [100.0]
    monkeypatch.setattr(disk_cache.time, "monotonic", lambda: clock[0])  # the limiter's now
    cache = DiskCache(tmp_path)
    with caplog.at_level(logging.WARNING, logger="meshreg.client"):
        for n in range(50):
            cache.save(ServiceKey("public", "DEFAULT_GROUP", f"s{n}"), [inst("10.0.0.1")])
            cache.save_config(ConfigKey("public", "DEFAULT_GROUP", f"d{n}"), None)
        clock[0] += 10.0  # LOG_INTERVAL later: said again, with the count in between
        cache.save(KEY, [inst("10.0.0.1")])
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert "could not write the disk cache for public/DEFAULT_GROUP/s0" in lines[0]
    assert "Not a directory" in lines[0]
    assert "config" in lines[1]
    assert "(49 similar suppressed in the last 10 s)" in lines[2]


@pytest.mark.timeout(30)
def test_settle_config_waits_for_its_data_id_only(tmp_path: Path) -> None:
    """A read served from disk waits for its own data id's save (review18), not for a
    slow service list queued before it."""
    cache = DiskCache(tmp_path)
    gate, entered = threading.Event(), threading.Event()
    real = cache.save

    def save(key: ServiceKey, instances: list[Instance]) -> None:
        entered.set()
        assert gate.wait(10)
        real(key, instances)

    cache.save = save  # type: ignore[method-assign]
    writer = DiskWriter(cache)
    config = ConfigKey("public", "DEFAULT_GROUP", "app.yaml")
    writer.save(KEY, [inst("10.0.0.1")])
    assert entered.wait(10)  # the list is being written, slowly
    assert writer.settle_config(config, 0.0)  # nothing of the data id waits
    writer.save(KEY._replace(service="other"), [inst("10.0.0.2")])
    writer.save_config(config, None)  # waits behind the slow list
    assert not writer.settle_config(config, 0.05)
    gate.set()
    assert writer.settle_config(config, 10)
    assert writer.flush(10)
