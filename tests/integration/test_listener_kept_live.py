"""A subscriber or config listener that starts while its only node is down (review51,
review57): ``subscribe`` and ``config_listen`` raise, as before, and now keep the listener
(``listener_kept``, Nacos 2's redo), which is called with the live data once the node is
up; ``meshreg watch`` and ``meshreg config watch`` say so on stderr and keep waiting.
Before, the listener was dropped: the application had to subscribe again by itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import NodeProcess, free_port_pair, meshreg_cmd, wait_until

from meshreg import Client
from meshreg.errors import ServerUnreachableError

pytestmark = pytest.mark.timeout(120)


class Heard:
    """What a callback was called with (the notifier thread appends, the test waits)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[object] = []

    def add(self, item: object) -> None:
        with self.lock:
            self.calls.append(item)

    def last(self) -> object:
        with self.lock:
            return self.calls[-1] if self.calls else None


def test_listeners_kept_while_the_node_is_down_are_called_once_it_is_up(
    start_node: Callable[..., NodeProcess], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # the node's data dir
    port = free_port_pair()
    address = f"127.0.0.1:{port}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    commands = {"watch": ("watch", "orders"), "cwatch": ("config", "watch", "app.yaml")}
    out = {name: tmp_path / f"{name}.out" for name in commands}
    err = {name: tmp_path / f"{name}.err" for name in commands}
    watchers = []
    for name, cmd in commands.items():
        with out[name].open("w") as o, err[name].open("w") as e:
            watchers.append(subprocess.Popen(
                meshreg_cmd(*cmd, "-s", address, "--timeout", "1"), stdout=o, stderr=e, env=env
            ))  # fmt: skip

    def said(path: Path, text: str) -> bool:
        return text in path.read_text()

    try:
        with Client([address], timeout=1.0, attempt_timeout=0.5) as consumer:
            services, configs = Heard(), Heard()
            with pytest.raises(ServerUnreachableError) as sub_error:
                consumer.subscribe("orders", lambda xs: services.add({i.address for i in xs}))
            with pytest.raises(ServerUnreachableError) as listen_error:
                consumer.config_listen("app.yaml", lambda c, r: configs.add((c, r)))
            for caught in (sub_error, listen_error):
                assert caught.value.listener_kept, caught.value
                assert "the listener is kept" in str(caught.value)
                assert address in str(caught.value)
            assert services.calls == [] and configs.calls == []
            for name in commands:  # the CLI watches: told, and waiting
                wait_until(lambda name=name: said(err[name], "waiting (Ctrl-C stops)"),
                           timeout=30, what=f"meshreg {name} to say it waits")  # fmt: skip
                assert "unsubscribe()" not in err[name].read_text()  # (a CLI user's words)

            node = start_node(port=port)
            with Client([node.address], timeout=5.0) as provider:
                provider.register("orders", "10.0.0.1", 8080)
                provider.config_publish("app.yaml", "a: 1\n")
                wait_until(
                    lambda: services.last() == {"10.0.0.1:8080"},
                    timeout=30,
                    what="the kept subscriber to be called with the live list",
                )
                wait_until(
                    lambda: configs.last() == ("a: 1\n", 1),
                    timeout=40,
                    what="the kept config listener to be called with the published config",
                )
                # and still once per change afterwards
                provider.register("orders", "10.0.0.2", 8080)
                wait_until(
                    lambda: services.last() == {"10.0.0.1:8080", "10.0.0.2:8080"},
                    what="the next change",
                )
                consumer.unsubscribe("orders")
                consumer.config_unlisten("app.yaml")
                # the CLI watches waited, and print the live data now
                wait_until(lambda: said(out["watch"], "10.0.0.1:8080"), timeout=30,
                           what="meshreg watch to print the live list")  # fmt: skip
                wait_until(lambda: said(out["cwatch"], "a: 1"), timeout=40,
                           what="meshreg config watch to print the published config")  # fmt: skip
    finally:
        for proc in watchers:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

