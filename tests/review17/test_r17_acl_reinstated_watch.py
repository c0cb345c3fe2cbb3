"""review17 F5: a client key removed from the ACL and put back (SIGHUP both times: an
operator's bad edit undone, a rotation step done in the wrong order) never gets its
notification connection back: the node holds 0 subscriptions of it for as long as the
process lives, and its watches and config listeners learn changes only from their
backstop re-pulls (10 s for services, 30 s for configs) instead of within milliseconds.
The client logs nothing about it.

docs/SECURITY.md "Reloading": "the node drops every notification connection ...
Subscribers reconnect within their reconnect interval (100 ms by default), handshake
again (a removed key is refused there), subscribe again under the new ACL, and each
exact subscription is answered with a sync, so a consumer misses nothing; the Python
client does all of this by itself." After the key is back, the reconnect is refused no
more, yet the SUB does not come back: libzmq stops reconnecting a socket whose handshake
was refused by ZAP (seen: two "refused a client connection" log lines, then nothing).
"""

from __future__ import annotations

import logging
import signal
import uuid
from pathlib import Path

import zmq.auth
from click.testing import CliRunner
from helpers import wait_until

from meshreg import Client
from meshreg.cli import main

ACL = """
[[client]]
name = "alpha"
key_file = "{alpha}"
allow = [{{ namespace = "a", access = "admin" }}]
"""


def test_watch_comes_back_after_key_reinstated(start_node, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.ERROR)
    for name in ("cluster", "alpha", "other"):
        assert CliRunner().invoke(main, ["keygen", str(tmp_path / name)]).exit_code == 0
    acl = tmp_path / "acl.toml"
    acl.write_text(ACL.format(alpha="alpha.pub"))
    pub, sec = zmq.auth.load_certificate(str(tmp_path / "cluster.key"))
    node = start_node(
        "--key", str(tmp_path / "cluster.key"), "--acl", str(acl), curve=(pub, sec, pub)
    )
    server_key = str(tmp_path / "cluster.pub")
    admin = Client(
        [node.address], namespace="a", key=str(tmp_path / "cluster.key"), server_key=server_key
    )
    watcher = Client(
        [node.address], namespace="a", key=str(tmp_path / "alpha.key"), server_key=server_key
    )
    seen: list[list[str]] = []
    configs: list[str | None] = []
    try:
        watcher.subscribe("orders", lambda xs: seen.append([i.address for i in xs]))
        watcher.config_listen("app", lambda content, rev: configs.append(content))

        def subs() -> tuple[int, int]:
            s = admin.stats()
            return s["subscribers"], s["config"]["subscribers"]

        wait_until(lambda: subs() == (1, 1), 5.0, 0.1, "the watcher's two subscriptions")

        # the key is removed (SIGHUP) ...
        acl.write_text(ACL.format(alpha="other.pub"))
        node.signal(signal.SIGHUP)
        wait_until(
            lambda: "refused a client connection" in node.log(),
            5.0,
            0.1,
            "the node to refuse the removed key's reconnect",
        )
        # ... and put back (SIGHUP)
        acl.write_text(ACL.format(alpha="alpha.pub"))
        node.signal(signal.SIGHUP)
        wait_until(lambda: node.log().count("reload: ACL") >= 2, 5.0, 0.1, "the second reload")

        try:
            wait_until(lambda: subs() == (1, 1), 5.0, 0.1, "subscriptions back")
        except AssertionError:
            raise AssertionError(
                f"5 s after the key was put back the node holds (service, config) "
                f"subscriptions {subs()} of the watcher, not (1, 1): its notification "
                f"connection never came back"
            ) from None

        admin.register("orders", "10.0.0.5", 8080)
        value = uuid.uuid4().hex
        admin.config_publish("app", value)
        wait_until(
            lambda: seen and "10.0.0.5:8080" in seen[-1],
            2.0,
            0.05,
            "the service push (a live watch: milliseconds)",
        )
        wait_until(lambda: value in configs, 2.0, 0.05, "the config push")
    finally:
        watcher.close()
        admin.close()
