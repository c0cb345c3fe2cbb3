"""A consumer that starts while every node is down (review12 F-offline): once it knows no
server answers, each read of a service or data id with a disk copy is served from it at
once (said once per data id, and for services in one line per 10 s naming how many), a
read without one fails at once with the usual error, and the client keeps trying in the
background, so when a node is back it is used at once.

The reviewer's test (tests/review/test_review12_offline_start_per_service.py on branch
review12): ``instances()`` of five cached services took the whole ``timeout`` (2 s) each,
one after the other, with the only node down; seen by hand with 3 s and six services
(``subscribe()`` too).  The bound below is one ``timeout`` for all the reads after the
first together, the reviewer's: the old code takes that for each of them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import NodeProcess, free_port_pair, wait_until

from meshreg import Client, Instance
from meshreg.errors import ServerUnreachableError

pytestmark = pytest.mark.timeout(120)

TIMEOUT = 4.0  # s, the client's call timeout
SERVICES = [f"svc{i}" for i in range(5)]
CONFIGS = ["app.yaml", "db.properties"]


def address_of(svc: str) -> str:
    return f"10.0.0.1:{8000 + SERVICES.index(svc)}"


class Seen:
    """A subscriber's calls (the notifier thread appends, the test waits)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[set[str]] = []

    def __call__(self, xs: list[Instance]) -> None:
        with self.lock:
            self.calls.append({i.address for i in xs})

    def last(self) -> set[str] | None:
        with self.lock:
            return self.calls[-1] if self.calls else None


def test_reads_from_the_disk_cache_do_not_each_wait_the_full_timeout(
    start_node: Callable[..., NodeProcess],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # the node's data dir
    node = start_node()
    dead = f"127.0.0.1:{free_port_pair()}"  # a second server that never runs
    cache = str(tmp_path / "cache")
    with Client([node.address], timeout=TIMEOUT) as provider:
        for svc in SERVICES:
            ip, port = address_of(svc).split(":")
            provider.register(svc, ip, int(port))
        for data_id in CONFIGS:
            provider.config_publish(data_id, f"{data_id}: 1\n")
        with Client([node.address], cache_dir=cache, timeout=TIMEOUT) as reader:
            for svc in SERVICES:  # writes <cache>/public/DEFAULT_GROUP/<svc>.json
                assert len(reader.instances(svc)) == 1
            for data_id in CONFIGS:
                assert reader.config_get(data_id).content == f"{data_id}: 1\n"
        node.kill()  # every node is down now (the provider's close cannot deregister)
        provider.close(timeout=0.5)

    caplog.set_level(logging.WARNING, logger="meshreg.client")
    offline = Client([node.address, dead], cache_dir=cache, timeout=TIMEOUT, attempt_timeout=0.5)
    try:
        took: dict[str, float] = {}

        def timed(what: str, read: Callable[[], object]) -> object:
            t = time.monotonic()
            try:
                return read()
            finally:
                took[what] = round(time.monotonic() - t, 2)

        for svc in SERVICES[:3]:
            listing = timed(f"instances({svc})", lambda svc=svc: offline.instances(svc))
            assert [i.address for i in listing] == [address_of(svc)]  # type: ignore[attr-defined]
        chosen = timed("select(svc3)", lambda: offline.select("svc3"))
        assert chosen.address == address_of("svc3")  # type: ignore[attr-defined]
        seen = Seen()
        timed("subscribe(svc4)", lambda: offline.subscribe("svc4", seen))
        wait_until(lambda: seen.last() == {address_of("svc4")}, what="svc4's disk copy")
        got = timed("config_get(app.yaml)", lambda: offline.config_get("app.yaml"))
        assert got.from_cache and got.content == "app.yaml: 1\n"  # type: ignore[attr-defined]
        heard: list[tuple[str | None, int]] = []
        current = timed(
            "config_listen(db.properties)",
            lambda: offline.config_listen("db.properties", lambda c, r: heard.append((c, r))),
        )
        assert current is not None and current.from_cache  # type: ignore[attr-defined]
        # no disk copy: the same error as after a whole timeout, naming both servers
        with pytest.raises(ServerUnreachableError) as caught:
            timed("instances(never-read)", lambda: offline.instances("never-read"))
        again = timed("instances(svc0) again", lambda: offline.instances("svc0"))
        assert [i.address for i in again] == [address_of("svc0")]  # type: ignore[attr-defined]

        first, *later = took.values()
        # the first read may wait (here until both servers failed); the others must not
        # each wait again
        assert sum(later) < TIMEOUT, (
            f"reads waited about the full timeout ({TIMEOUT} s) with every node down: {took}"
        )
        assert node.address in str(caught.value) and dead in str(caught.value)
        assert "is `meshreg node` running there?" in str(caught.value)
        served = [r.getMessage() for r in caplog.records if "disk cache" in r.getMessage()]
        for name in CONFIGS:  # said once per data id
            assert sum(name in line for line in served) == 1, served
        # the services with the others (review51 F4: one line per LOG_INTERVAL naming how
        # many): svc0's at once, the 4 served after it when the interval ends (10 s later)
        assert sum("svc" in line for line in served) == 1, served
        assert any(line.startswith("public/DEFAULT_GROUP/svc0: ") for line in served), served

        # a node comes back (with its config data; its providers register again): the
        # client, which kept trying in the background, takes the live data by itself
        back = start_node(port=node.port)
        with Client([back.address], timeout=TIMEOUT) as provider:
            provider.register("svc4", "10.0.0.1", 8004)
            provider.register("svc4", "10.0.0.2", 8004)
            wait_until(
                lambda: seen.last() == {address_of("svc4"), "10.0.0.2:8004"},
                timeout=20,
                what="the subscriber to get the live list of svc4",
            )
            provider.register("never-read", "10.0.0.3", 80)
            assert [i.address for i in offline.instances("never-read")] == ["10.0.0.3:80"]
            wait_until(
                lambda: not offline.config_get("app.yaml").from_cache,
                timeout=20,
                what="config_get to read a node again",
            )
    finally:
        offline.close(timeout=1.0)
