"""A member replaced with an empty data directory, started with ``--config-join-existing``
(docs/CONFIG.md "A store that started empty"; etcd's ``--initial-cluster-state
existing``), with real processes.

review43 F1: three members, n3 not started yet (a new cluster with a member missing); v1
acknowledged by n1 and n2; n1 paused (down), n2's disk lost and n2 replaced at its address;
n3 started for the first time.  Without the flag every rule takes this for a new
cluster's start: n3 heard only n2, whose store is as empty as its own, called itself a new
member, answered the data id absent and acknowledged a second create at revision 1.  With
the flag on the replaced n2 (what docs/OPERATIONS.md says to do), n2's pages say
``joining`` and n3 waits: both say, in ``ping --ready``, that they wait for a whole peer
that is down (review43 F2), and once n1 is back every node holds v1 and nothing else at
revision 1."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest
from conftest import CLUSTER_TIMINGS
from helpers import HOST, NodeProcess, free_port_pair, run_cli, start_all, wait_until
from test_configs import Conn, config_ready

pytestmark = pytest.mark.timeout(150)


def _ping_ready(node: NodeProcess) -> tuple[int, str]:
    done = run_cli("ping", "--ready", "-s", node.address, "--timeout", "3")
    return done.returncode, done.stdout + done.stderr


def test_a_replaced_member_joining_an_existing_cluster_is_not_a_new_members_witness(
    tmp_path: Path,
) -> None:
    ports = [free_port_pair() for _ in range(3)]
    peers = [a for p in ports for a in ("--peer", f"{HOST}:{p}")]
    data = [tmp_path / f"node{i}" for i in range(3)]
    nodes = [
        NodeProcess(*CLUSTER_TIMINGS, *peers, "--data-dir", str(data[i]), port=p)
        for i, p in enumerate(ports)
    ]
    n1, n2, n3 = nodes
    conns: list[Conn] = []
    try:
        start_all([n1, n2])  # n3 not started: a new cluster with a member missing
        for node in (n1, n2):
            wait_until(lambda n=node: config_ready(n), 30, what="n1 and n2 config ready")
        c1 = Conn(n1.port)
        conns.append(c1)
        v1 = c1.ok("config_publish", data_id="joined.txt", content="v1", if_revision=0)
        assert v1["revision"] == 1  # acknowledged by a majority of 3: n1 and n2 both
        c2 = Conn(n2.port)
        conns.append(c2)
        wait_until(lambda: c2.call("config_get", data_id="joined.txt")["ok"], 15,
                   what="v1 on n2")  # fmt: skip

        n1.signal(signal.SIGSTOP)  # the only whole store left is down
        n2.kill()
        shutil.rmtree(data[1])  # n2's disk lost: replaced at its address, as documented
        n2.extra = (*n2.extra, "--config-join-existing")
        start_all([n2])
        n3.launch().wait_ready()  # n3's first start

        def waits_for_down_peer(node: NodeProcess) -> bool:
            code, out = _ping_ready(node)
            assert code != 0, f"{node.address} says ready with n1 down: {out}\n{node.log()}"
            return "start the ones that are down" in out and "stays so" in out

        for node in (n3, n2):  # beyond a new member's wait (two peer timeouts): not ready
            wait_until(lambda n=node: waits_for_down_peer(n), 40, interval=0.3,
                       what=f"{node.address} to say it waits for a whole peer")  # fmt: skip
        _, said = _ping_ready(n3)
        assert "try again in a moment" not in said, said
        shown = run_cli("cluster", "-s", n2.address).stdout
        assert "it joins an existing cluster" in shown and "it stays so: " in shown, shown
        c3 = Conn(n3.port)
        conns.append(c3)
        name, message = c3.error("config_get", data_id="joined.txt")
        assert name == "UNAVAILABLE" and "whole" in message, message
        second = c3.call("config_publish", data_id="joined.txt", content="v2", if_revision=0)
        assert not second["ok"], f"n3 acknowledged a create over the acknowledged v1: {second}"

        n1.signal(signal.SIGCONT)  # the whole store is back: everyone catches up from it
        for node in nodes:
            wait_until(lambda n=node: _ping_ready(n)[0] == 0, 40, interval=0.3,
                       what=f"{node.address} ready once n1 is back")  # fmt: skip
        for conn in (c1, c2, c3):
            got = conn.ok("config_get", data_id="joined.txt")
            assert (got["content"], got["revision"]) == ("v1", 1), got
            history = conn.ok("config_history", data_id="joined.txt")["items"]
            assert [h["revision"] for h in history] == [1], history
        assert "joins a cluster that holds configs" in n2.log()
    finally:
        for c in conns:
            c.close()
        n1.signal(signal.SIGCONT)
        for node in nodes:
            node.cleanup()
