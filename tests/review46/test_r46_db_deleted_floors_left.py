"""review46 F3: 638b19b ("a database deleted alone, the state file left saying whole, is a
store that started empty") does not hold on a node that has ever purged a tombstone: the
purged-floor file ``configs.purged-floors.json`` stays beside the deleted database, and
``config_plane`` computes ``empty = not loaded and not self.store.purged_floors``, so the
database "deleted alone" is NOT empty to ``load_state`` (``intact = state == "intact" and
not (self.created and empty)``): the node counts its empty store as whole, and a majority
of it and a whole node that lacks a write acknowledged without it answers that write as
absent and acknowledges a second create at its revision (review42 F1 again).

docs/CONFIG.md "A store that started empty": "a `configs.sqlite3` deleted alone, the state
file left beside it, counts as empty too"; CHANGELOG: "A config database deleted alone
(`configs.sqlite3`, to reset a node's configs) ... is now a store that started empty too:
the node no longer counts its empty store among the majority it catches up from."  A
purge happens on any cluster that deletes: past ``keep_days`` (30 days), or beyond
``max_tombstones`` (here 1, to get a floor at once).

Three real nodes on 127.0.0.1.  Two creates and deletes (a tombstone purged, so every node
writes a floor file); n3 stopped; ``x`` created v1 (acknowledged by n1 and n2); n2 stopped,
its ``configs.sqlite3`` deleted alone; n1 paused (SIGSTOP: the only whole copy of v1);
n2 and n3 started.  Expected (the control, the same without the purge, passes): n2 counts
as a store that started empty, so no config read says ``x`` absent, and a create of ``x``
at ``if_revision=0`` is refused.  Also with n2 restarted with ``--config-join-existing``
(docs/OPERATIONS.md: "it ... does nothing to a whole store": the floor file makes the
empty store whole, so the flag does nothing either).  Seen: ``x`` NOT_FOUND on n2 and n3,
and the second create acknowledged at revision 1 over the acknowledged v1.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from conftest import CLUSTER_TIMINGS
from r46util import HOST, NodeProcess, port_block, start_all, wait_until
from test_configs import Conn

WAIT = 15.0  # s n2 and n3 are given to (wrongly) serve x as absent


def _configs(log: str) -> str:
    return "\n".join(line[-300:] for line in log.splitlines() if "config" in line)[-3000:]


@pytest.mark.timeout(150)
@pytest.mark.parametrize(
    "purge", ["tombstone-purged", "tombstone-purged-join-existing", "control-no-purge"]
)
def test_database_deleted_alone_beside_a_floor_file(tmp_path: Path, purge: str) -> None:
    toml = tmp_path / "node.toml"
    toml.write_text("[config]\nmax_tombstones = 1\n")
    ports = [port_block() for _ in range(3)]
    peers = [a for p in ports for a in ("--peer", f"{HOST}:{p}")]
    data = [tmp_path / f"n{i + 1}" for i in range(3)]
    nodes = [
        NodeProcess(
            "--config", str(toml), *CLUSTER_TIMINGS, *peers, "--data-dir", str(data[i]), port=p
        )  # fmt: skip
        for i, p in enumerate(ports)
    ]
    n1, n2, n3 = nodes
    conns: list[Conn] = []

    def conn(node: NodeProcess) -> Conn:
        c = Conn(node.port)
        conns.append(c)
        return c

    try:
        start_all(nodes)
        c1 = conn(n1)
        wait_until(lambda: c1.call("config_list")["ok"], 30, what="n1 config ready")
        if purge.startswith("tombstone-purged"):
            for d in ("gone-a", "gone-b", "gone-c"):
                c1.ok("config_publish", data_id=d, content="tmp")
                c1.ok("config_delete", data_id=d)
            floors = data[1] / "configs.purged-floors.json"
            wait_until(floors.exists, 20, what="a purged floor written on n2")
        # n3 has seen n2's store whole (its state file says so): a wiped n2 is no new
        # member to it (``known``), whatever the floors (without this wait the control can
        # fail too, n3 stopped before it heard n2 whole: a young cluster, not this finding)
        # and n3's own store is whole (ready): else, restarted not whole and unknown to the
        # wiped n2, n3 is a new member (1 control run in 16 before this wait)
        state3 = data[2] / "configs.state.json"
        wait_until(lambda: n2.address in json.loads(state3.read_text()).get("seen", []), 30,
                   what="n3 saw n2's store whole")  # fmt: skip
        wait_until(lambda: json.loads(state3.read_text()).get("store") == "intact", 30,
                   what="n3's store whole")  # fmt: skip
        n3.stop()
        v1 = c1.ok("config_publish", data_id="x", content="v1", if_revision=0)
        assert v1["revision"] >= 1  # acknowledged: by n1 and n2 (n3 is down)
        c2 = conn(n2)
        wait_until(lambda: c2.call("config_get", data_id="x").get("ok"), 15, what="v1 on n2")
        c2.close()
        conns.remove(c2)
        n2.stop()
        (data[1] / "configs.sqlite3").unlink()  # deleted alone: "to reset a node's configs"
        left = sorted(p.name for p in data[1].iterdir())
        if purge.endswith("join-existing"):  # what OPERATIONS.md says for an emptied store
            n2.extra = (*n2.extra, "--config-join-existing")
        n1.signal(signal.SIGSTOP)  # the only whole copy of v1 is away
        start_all([n2, n3])
        c2, c3 = conn(n2), conn(n3)
        seen: list[str] = []
        end = time.monotonic() + WAIT
        while time.monotonic() < end and not seen:
            for name, c in (("n2", c2), ("n3", c3)):
                got = c.call("config_get", data_id="x", timeout=5)
                if not got["ok"] and got["error"]["name"] == "NOT_FOUND":
                    seen.append(f"{name}: x NOT_FOUND")
            time.sleep(0.3)
        if seen:
            second = c3.call("config_publish", data_id="x", content="v2", if_revision=0)
            if second["ok"]:
                seen.append(f"second create acknowledged: {second['result']}")
        assert not seen, (
            f"v1 of x acknowledged at revision {v1['revision']}; n2's configs.sqlite3 deleted "
            f"alone (left: {left}); with n1 away: {seen}\n"
            f"n2's log: {_configs(n2.log())}\nn3's log: {_configs(n3.log())}"
        )
    finally:
        n1.signal(signal.SIGCONT)
        for c in conns:
            c.close()
        for n in nodes:
            n.cleanup()
