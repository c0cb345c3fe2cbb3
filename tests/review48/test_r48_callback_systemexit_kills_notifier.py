"""review48 F4: the notifier thread catches ``Exception`` only. A config listener that
calls ``sys.exit(1)`` on an invalid config (the usual "exit and let the supervisor
restart us") ends the notifier thread alone, silently (threading ignores SystemExit):
the process goes on running and no subscription or config callback of that Client is
ever called again, with nothing in the log; instances() meanwhile knows the new list."""

from __future__ import annotations

import sys
import tempfile

import pytest
from r48lib import Recorder, client, new_nodes, running, wait_ready, wait_until


@pytest.mark.timeout(120)
def test_callbacks_keep_coming_after_a_callback_raised_systemexit() -> None:
    nodes = new_nodes(3, tempfile.mkdtemp(prefix="r48-f4-"))
    with running(nodes):
        for n in nodes:
            wait_ready(n)
        addrs = [n.address for n in nodes]
        w, c = client(addrs), client(addrs)
        try:
            w.config_publish("app.yaml", "good")

            def on_config(content: str | None, revision: int) -> None:
                if content == "bad":
                    sys.exit(1)  # "invalid config: exit so the supervisor restarts us"

            c.config_listen("app.yaml", on_config)
            seen = Recorder()
            c.subscribe("orders", seen)
            w.register("orders", "10.14.0.1", 1)
            wait_until(lambda: seen.last() == {"10.14.0.1:1"}, 10, what="first list")
            w.config_publish("app.yaml", "bad")
            wait_until(lambda: c.config_get("app.yaml").content == "bad", 10, what="bad read")
            w.register("orders", "10.14.0.2", 2)
            want = {"10.14.0.1:1", "10.14.0.2:2"}
            wait_until(lambda: {i.address for i in c.instances("orders")} == want, 10,
                       what="the client's own view has the new instance")  # fmt: skip
            try:
                wait_until(lambda: seen.last() == want, 10, what="subscription callback")
            except AssertionError:
                pytest.fail(
                    "after a config listener raised SystemExit, the subscription callback was "
                    f"never called again (last list {sorted(seen.last() or [])}, instances() "
                    f"{sorted(want)}); notifier thread alive: {c._notifier.is_alive()}"
                )
        finally:
            w.close(1)
            c.close(1)
