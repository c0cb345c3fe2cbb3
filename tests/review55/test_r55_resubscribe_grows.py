"""review55 F4: subscribing (or listening) again with the same callback grows the
client's memory without bound.

README.md ("The Python client" / client.py ``subscribe``): "A callback subscribed again
to the same service (an equal one: the same function or bound method) is called now, and
still once per change, as with Nacos"; config_listen: "the same callback listening again
to a data id is called now, and still once per change".  So an application may call
``subscribe(service, on_change)`` wherever it needs the service (per request, per
reconnect of its own), as Nacos users do.  The I/O thread keeps the callback once, but
``ListenerTable.add`` (client/listeners.py) appends a new ``LiveListener`` for the key on
every call and nothing ever removes the extra ones: 20,000 ``subscribe`` plus 20,000
``config_listen`` of the same two callbacks left 20,001 entries per key (2.3 MB), and
every ``unsubscribe``/``config_unlisten`` walks them all under the table's lock.
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import pytest
from helpers import wait_until

from meshreg import Client

REPEATS = 3000
ALLOWED_GROWTH = 64 * 1024  # bytes kept by meshreg's code after the repeats (fixed: ~0)


def repeat(client: Client, on_service: Any, on_config: Any, calls: dict[str, int], n: int) -> None:
    """The ``n``-th round of REPEATS calls; back once each has been called back: each is
    called "now", from the client's listener thread, which lags under load (the calls
    still queued are not what is measured)."""
    for _ in range(REPEATS):
        client.subscribe("r55-resub", on_service)
        client.config_listen("r55-resub", on_config)
    wait_until(lambda: min(calls.values()) >= n * REPEATS + 1, 30, 0.02,
               "the callbacks of every repeated call to have run")  # fmt: skip
    gc.collect()


@pytest.mark.timeout(90)
def test_subscribing_again_with_the_same_callback_keeps_nothing_more(start_node: Any) -> None:
    node = start_node()
    client = Client([node.address], handle_sigterm=False)
    calls = {"service": 0, "config": 0}

    def on_service(instances: Any) -> None:
        calls["service"] += 1

    def on_config(content: Any, revision: int) -> None:
        calls["config"] += 1

    try:
        client.subscribe("r55-resub", on_service)
        client.config_listen("r55-resub", on_config)
        tracemalloc.start()
        try:
            meshreg_only = [tracemalloc.Filter(True, "*/meshreg/*")]
            # a round before the one measured: CPython's bounded caches (the tuples a
            # `match` line allocates stay traced to it, about 500 per line under load:
            # 60-90 KiB, run to run) fill in it, and are not what is measured
            repeat(client, on_service, on_config, calls, 1)
            before = tracemalloc.take_snapshot().filter_traces(meshreg_only)
            repeat(client, on_service, on_config, calls, 2)
            after = tracemalloc.take_snapshot().filter_traces(meshreg_only)
        finally:
            tracemalloc.stop()
        growth = sum(s.size_diff for s in after.compare_to(before, "filename"))
        top = after.compare_to(before, "lineno")[:3]
        assert growth < ALLOWED_GROWTH, (
            f"{REPEATS} repeated subscribe() and config_listen() calls of the same two "
            f"callbacks left {growth} bytes behind in meshreg's code (the callbacks are "
            f"kept once); largest: {[str(s) for s in top]}"
        )
    finally:
        client.close()
