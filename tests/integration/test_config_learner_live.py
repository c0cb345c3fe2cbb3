"""A scale-out's new node serves the config center at once, as a learner (real processes).

README's flow adds a node by starting it first, with the full new list, then restarting
the old nodes with that list one by one.  Before, the new node's config center took
messages from configured members only, and the old nodes' lists did not name it: they
refused its catch-up, so its config reads were refused until a majority of its list
listed it, and its writes timed out (review13, left open last stop).

Now (docs/CONFIG.md "A new node: learner", etcd's learner): an old node answers a learned
member's catch-up and pushes it every version it commits, but never counts it in a
majority; the new node, while some of its peers do not list it, owns no data id and
forwards every config write to the owner over the others' view.  So it serves reads and
listeners from its first catch-up, its writes are acknowledged by the old majority, and
once every list names it (old nodes restarted) it is an ordinary member.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from conftest import CLUSTER_TIMINGS
from helpers import NodeProcess, free_port_pair, run_cli, wait_until
from test_configs import Conn, config_ready, start_nodes

pytestmark = pytest.mark.timeout(150)


def _revision(conn: Conn, data_id: str) -> object:
    reply = conn.call("config_get", data_id=data_id)
    return reply["result"]["revision"] if reply["ok"] else None


def test_a_new_node_first_serves_configs_as_a_learner(tmp_path: Path) -> None:
    old = start_nodes(3, tmp_path)
    conns: list[Conn] = []
    new: NodeProcess | None = None
    try:
        for node in old:
            wait_until(lambda n=node: config_ready(n), 15, what="config plane ready")
        a = Conn(old[0].port)
        conns.append(a)
        v1 = a.ok("config_publish", data_id="scale.txt", content="v1")
        # the new node: its list names everyone, theirs do not name it
        port = free_port_pair()
        everyone = [n.address for n in old] + [f"127.0.0.1:{port}"]
        peers = [x for addr in everyone for x in ("--peer", addr)]
        new = NodeProcess(*CLUSTER_TIMINGS, *peers, "--data-dir", str(tmp_path / "new"),
                          port=port)  # fmt: skip
        new.start()
        d = Conn(new.port)
        conns.append(d)
        wait_until(lambda: config_ready(new), 20, what="the new node's configs ready")
        got = d.ok("config_get", data_id="scale.txt")
        assert (got["content"], got["revision"]) == ("v1", v1["revision"])
        stats = d.ok("stats")["config"]
        assert stats["learner_of"] == 3, stats  # none of the old lists names it
        # a counts it once it hears its beacons (its join taught a the address): the new
        # node's catch-up needs none of that, so under load it may be ready first (CI)
        wait_until(lambda: a.ok("stats")["config"]["learners"] == 1, 10,
                   what="the old node counts the learner")  # fmt: skip
        # ... and the text of `meshreg stats` says so too (review24: only --json did)
        text = run_cli("stats", "-s", new.address).stdout
        assert "LEARNER of 3 members" in text, text
        assert "1 learners" in run_cli("stats", "-s", old[0].address).stdout
        # a change published on an old node reaches the new node's listener
        heard: list[dict[str, object]] = []
        done = threading.Event()

        def listen() -> None:
            from meshreg import Client

            with Client([new.address], timeout=5.0) as c:

                def seen(content: str | None, revision: int) -> None:
                    heard.append({"content": content, "revision": revision})
                    if content == "v2":
                        done.set()

                c.config_listen("scale.txt", seen)
                done.wait(20)

        t = threading.Thread(target=listen, daemon=True)
        t.start()
        wait_until(lambda: bool(heard), 10, what="the listener's first call (v1)")
        v2 = a.ok("config_publish", data_id="scale.txt", content="v2")
        assert done.wait(10), f"the new node's listener never heard v2: {heard}"
        t.join(10)
        # a write through the new node is acknowledged by the old majority
        for i in range(4):  # data ids owned by different old nodes
            w = d.ok("config_publish", data_id=f"via-new-{i}.txt", content=f"n{i}")
            for node in old:
                conn = Conn(node.port)
                conns.append(conn)
                wait_until(
                    lambda c=conn, i=i, r=w["revision"]: _revision(c, f"via-new-{i}.txt") == r,
                    10,
                    what=f"via-new-{i}.txt on {node.address}",
                )
        assert v2["revision"] > v1["revision"]
        # the lists really differ: the new node says so once it lasts (review61 F1: not
        # for the beacon or two a running peer takes to hear a newcomer), naming them all
        wait_until(lambda: "do not name this node" in new.log(), 15,
                   what="the new node's warning that the old lists leave it out")  # fmt: skip

        def said() -> list[str]:
            return [x for x in new.log().splitlines() if "do not name this node" in x]

        wait_until(lambda: all(any(n.address in x for x in said()) for n in old), 10,
                   what="every old node named")  # fmt: skip
        assert len(said()) <= len(old), said()  # (once each while it lasts)
        # the scale-out finished: each old node restarted with the full list, in turn
        for node in old:
            node.stop()
            data_dir = node.extra.index("--data-dir")
            node.extra = (*CLUSTER_TIMINGS, *peers, *node.extra[data_dir:])
            node.start()
            wait_until(lambda n=node: config_ready(n), 20, what=f"{node.address} ready again")
        wait_until(lambda: d.ok("stats")["config"]["learner_of"] == 0, 15,
                   what="the new node a full member")  # fmt: skip
        for node in old:
            conn = Conn(node.port)
            conns.append(conn)
            stats = conn.ok("stats")["config"]
            assert (stats["learners"], stats["members"]) == (0, 4), stats
            got = conn.ok("config_get", data_id="scale.txt")
            assert got["revision"] == v2["revision"], got
        w = d.ok("config_publish", data_id="after.txt", content="done")
        assert w["revision"] >= 1
    finally:
        for conn in conns:
            conn.close()
        for node in old:
            node.cleanup()
        if new is not None:
            new.cleanup()
