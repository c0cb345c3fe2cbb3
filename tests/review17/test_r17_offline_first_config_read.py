"""review17 F2: a process started while no node answers waits the client's whole `timeout`
for its first `config_get` of a data id it holds on disk, not one `attempt_timeout` per
server as for `instances`.

README, Consumers, "Outage": "Once every server has failed one attempt (attempt_timeout
each) with no answer from any node since, the client stops waiting: a read of a service or
config data id it holds in memory or on disk is answered from it at once ... So a process
started during an outage waits for its first read only, not a timeout per service."
docs/CONFIG.md "Disk (cache_dir)": the same for configs.

Measured: instances() of a service on disk returns after 1.0 s (one server) / 2.0 s (two),
config_get() of a data id on disk after 3.0 s (timeout=3) / 10.0 s (timeout=10)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from meshreg import Client

TIMEOUT = 8.0


def test_first_config_get_offline_waits_attempts_not_timeout(
    start_node, tmp_path: Path, caplog
) -> None:
    caplog.set_level(logging.ERROR)
    node = start_node()
    cache = str(tmp_path / "cache")
    provider = Client([node.address], timeout=1.0)  # stays registered until the node dies
    provider.register("orders", "10.0.0.5", 8080)
    with Client([node.address], cache_dir=cache) as c:
        c.config_publish("app.yaml", "a: 1\n", type="yaml")
        assert c.config_get("app.yaml").content == "a: 1\n"
        assert [i.address for i in c.instances("orders")] == ["10.0.0.5:8080"]
    # the disk cache holds the last list (an emptied list removes its file: review39 F2,
    # so the provider is not closed before the node dies) and the config
    node.kill()
    provider.close()

    # the registry read, for comparison: one attempt (1 s), then the disk copy
    with Client([node.address], cache_dir=cache, timeout=TIMEOUT) as c1:
        t0 = time.monotonic()
        c1.instances("orders")
        took_instances = time.monotonic() - t0

    with Client([node.address], cache_dir=cache, timeout=TIMEOUT) as c2:
        t0 = time.monotonic()
        info = c2.config_get("app.yaml")
        took_config = time.monotonic() - t0
    assert info is not None and info.from_cache and info.content == "a: 1\n"
    # not a speed check: whether the read waited for its whole time-out (8 s) or not
    assert took_instances < TIMEOUT / 2, f"instances() from disk took {took_instances:.2f}s"
    assert took_config < TIMEOUT / 2, (
        f"the first config_get of a process started during an outage took {took_config:.2f}s "
        f"(the client's whole timeout, {TIMEOUT}s) before serving the disk copy; "
        f"instances() of a service on disk took {took_instances:.2f}s (one attempt_timeout)"
    )
