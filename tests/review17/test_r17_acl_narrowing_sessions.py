"""review17 F8: narrowing a client's ACL (SIGHUP) does not stop its session from keeping
alive the instances it may no longer register: a session renewal is checked only against
"write on some service of the namespace", so an instance registered in a session before
the change stays registered and healthy for as long as the client renews, while the same
client's per-instance beats are refused and its beat-kept instance expires as it should.

docs/SECURITY.md, the op table: "`session_open`, `session_renew`, `session_close` |
write | some service of the namespace (a session keeps alive what its client may
register)"; README: "`kill -HUP` the node to reread the ACL; a removed key loses access at
its next request"; "Reloading": "every later request ... is checked against it".
An operator who takes write access on `payments*` away from a key that registered an
impostor there cannot make the impostor lapse by changing the ACL.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import zmq.auth
from click.testing import CliRunner
from helpers import holds_for, wait_until

from meshreg import Client
from meshreg.cli import main

ACL = """
[[client]]
name = "app"
key_file = "app.pub"
allow = [{{ namespace = "a", group = "G1", service = "{pattern}", access = "write" }}]
[[client]]
name = "ops"
key_file = "ops.pub"
allow = [{{ namespace = "*", access = "admin" }}]
"""
TIMINGS = ("--check-interval", "0.2", "--unhealthy-after", "1.5", "--evict-after", "3")


def test_narrowed_acl_lets_session_instance_lapse(start_node, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.CRITICAL)
    for name in ("cluster", "app", "ops"):
        assert CliRunner().invoke(main, ["keygen", str(tmp_path / name)]).exit_code == 0
    acl = tmp_path / "acl.toml"
    acl.write_text(ACL.format(pattern="s*"))
    pub, sec = zmq.auth.load_certificate(str(tmp_path / "cluster.key"))
    node = start_node(
        *TIMINGS, "--key", str(tmp_path / "cluster.key"), "--acl", str(acl), curve=(pub, sec, pub)
    )
    sk = str(tmp_path / "cluster.pub")
    app_key = str(tmp_path / "app.key")
    in_session = Client(
        [node.address], namespace="a", group="G1", beat_interval=0.3, key=app_key, server_key=sk
    )
    beating = Client(
        [node.address],
        namespace="a",
        group="G1",
        beat_interval=0.3,
        sessions=False,
        key=app_key,
        server_key=sk,
    )
    ops = Client(
        [node.address], namespace="a", group="G1", key=str(tmp_path / "ops.key"), server_key=sk
    )

    def listed() -> dict[str, bool]:
        return {i.address: i.healthy for i in ops.instances("s1", healthy_only=False)}

    try:
        in_session.register("s1", "10.0.0.1", 1)
        beating.register("s1", "10.0.0.2", 1)
        wait_until(
            lambda: listed() == {"10.0.0.1:1": True, "10.0.0.2:1": True}, 5.0, what="both instances"
        )
        acl.write_text(ACL.format(pattern="x*"))  # app may no longer write s*
        node.signal(signal.SIGHUP)
        wait_until(lambda: "reload: ACL" in node.log(), 5.0, what="the reload")

        # the beat-kept instance lapses (its beats are refused) ...
        wait_until(lambda: "10.0.0.2:1" not in listed(), 8.0, 0.1, "the beat-kept instance to go")
        # ... the session-kept one must too: evict_after (3 s) passed long ago
        try:
            wait_until(lambda: "10.0.0.1:1" not in listed(), 4.0, 0.1, "the session instance to go")
        except AssertionError:
            holds_for(lambda: listed().get("10.0.0.1:1") is True, 1.0)
            raise AssertionError(
                "after its write access on a/G1/s* was revoked (SIGHUP), the key's instance "
                "a/G1/s1 10.0.0.1:1 is still registered and healthy, kept alive by its session "
                "renewals (its per-instance-beat twin 10.0.0.2:1 lapsed as expected): "
                f"{listed()}"
            ) from None
    finally:
        for c in (in_session, beating, ops):
            c.close()
