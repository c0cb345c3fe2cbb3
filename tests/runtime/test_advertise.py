"""``advertise``: the address a node bound to every interface gives its peers and clients.

Before it, ``--host 0.0.0.0`` in a cluster announced ``0.0.0.0:P`` in its beacons: its
configured address was never heard (a member listed down for good beside a duplicate that
was up), clients were told to reach ``0.0.0.0``, and the config center, which knows its
members by their configured addresses, refused every config message of its peers ("not a
configured peer") and never became ready."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import CLUSTER_TIMINGS
from helpers import NodeProcess, free_port_pair, meshreg_cmd, run_cli, start_all, wait_until

from meshreg import Client
from meshreg.config import NodeConfig, load_node_config
from meshreg.errors import ConfigError


def test_a_wildcard_host_in_a_cluster_needs_an_advertised_address() -> None:
    with pytest.raises(ConfigError, match=r"0\.0\.0\.0 binds every interface.*--advertise"):
        NodeConfig().with_overrides(host="0.0.0.0", peers=("10.0.0.2:7800",))
    with pytest.raises(ConfigError, match=r":: binds every interface.*--advertise"):
        NodeConfig().with_overrides(host="::", peers=("10.0.0.2:7800",))
    alone = NodeConfig().with_overrides(host="0.0.0.0")  # no peers: nobody to tell
    assert alone.address == "0.0.0.0:7800"


@pytest.mark.parametrize("value", ["0.0.0.0", "::", "bad host", "a..b", " 10.0.0.5"])
def test_an_advertised_address_must_name_a_machine(value: str) -> None:
    with pytest.raises(ConfigError, match="advertise"):
        NodeConfig().with_overrides(host="0.0.0.0", advertise=value, peers=("10.0.0.2:7800",))


def test_the_advertised_address_names_the_node(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text(
        '[node]\nhost = "0.0.0.0"\nadvertise = "10.0.0.5"\n'
        '[cluster]\npeers = ["10.0.0.5:7800", "10.0.0.6:7800"]\n'
    )
    cfg = load_node_config(path)
    assert cfg.host == "0.0.0.0"  # what the sockets bind
    assert cfg.address == "10.0.0.5:7800" and cfg.effective_node_id == "10.0.0.5:7800"
    assert cfg.peer_addresses() == ["10.0.0.6:7800"]  # its own entry is dropped
    path.write_text("[node]\nadvertise = 5\n")
    with pytest.raises(ConfigError, match=r"\[node\] advertise must be a string"):
        load_node_config(path)


def test_nodes_bound_to_every_interface_form_one_cluster(
    started_nodes: list[NodeProcess],
) -> None:
    """Two nodes on 0.0.0.0 advertising 127.0.0.1: each sees the other under its configured
    address, nothing learned besides, and the config center becomes ready."""
    ports = [free_port_pair() for _ in range(2)]
    peers = [arg for p in ports for arg in ("--peer", f"127.0.0.1:{p}")]
    nodes = [
        NodeProcess(*CLUSTER_TIMINGS, *peers, "--advertise", "127.0.0.1", "--insecure", port=p)
        for p in ports
    ]
    for n in nodes:  # bind every interface (NodeProcess passes --host 127.0.0.1 first)
        n.extra = ("--host", "0.0.0.0", *n.extra)
    started_nodes.extend(nodes)
    start_all(nodes)

    def formed() -> bool:
        for n in nodes:
            with Client([n.address]) as c:
                view = c.cluster()
            rows = view["members"]
            if len(rows) != 2 or any(m["state"] != "up" for m in rows):
                return False
            if not view.get("config", {}).get("ready"):
                return False
        return True

    wait_until(formed, timeout=20, what="two nodes on 0.0.0.0 to see each other, configs ready")
    with Client([nodes[0].address]) as c:
        view = c.cluster()
    assert sorted(m["id"] for m in view["members"]) == sorted(n.address for n in nodes)
    assert all(m["configured"] for m in view["members"])
    assert run_cli("config", "publish", "app.yaml", "--content", "a: 1", "-s",
                   nodes[1].address).returncode == 0  # fmt: skip


def test_a_cluster_node_on_every_interface_without_advertise_does_not_start() -> None:
    port = free_port_pair()
    out = subprocess.run(
        meshreg_cmd(
            "node",
            "--host",
            "0.0.0.0",
            "--port",
            str(port),
            "--insecure",
            "--peer",
            f"127.0.0.1:{port + 10}",
        ),  # fmt: skip
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "--advertise" in out.stderr and "Traceback" not in out.stderr


def test_an_advertised_address_must_be_the_one_the_list_names_the_node_by() -> None:
    """review13: --advertise localhost while the lists name the node 127.0.0.1:P brought
    back the duplicate member and the config center that never became ready."""
    with pytest.raises(ConfigError, match=r"names this node 127\.0\.0\.1:7800.*localhost:7800"):
        NodeConfig().with_overrides(
            advertise="localhost", peers=("127.0.0.1:7800", "127.0.0.1:7810")
        )
    ok = NodeConfig().with_overrides(advertise="127.0.0.1", peers=("127.0.0.1:7800", "x:7810"))
    assert ok.address == "127.0.0.1:7800"
    not_listed = NodeConfig().with_overrides(advertise="localhost", peers=("10.0.0.9:7810",))
    assert not_listed.address == "localhost:7800"  # its list does not name it: nothing to check


def test_peers_listed_by_host_name_get_the_addresses_they_resolve_to_as_aliases() -> None:
    """config ``peer_aliases``: a host name in the peer list resolves (once, at start)
    to the ``ip:port`` its node announces; an address, or a name that does not resolve,
    gives none (tests/integration/test_peer_hostnames.py: the cluster it fixes)."""
    cfg = NodeConfig().with_overrides(
        port=7810, peers=("localhost:7820", "10.0.0.6:7800", "no-such-host.invalid:7800")
    )
    aliases = cfg.peer_aliases()
    assert aliases.get("127.0.0.1:7820") == "localhost:7820"
    assert "10.0.0.6:7800" not in aliases and set(aliases.values()) == {"localhost:7820"}


def test_a_beacon_from_an_alias_is_the_listed_peer() -> None:
    from meshreg.core.membership import Membership

    m = Membership(
        "n1", "127.0.0.1:7810", ["localhost:7820"], 3.0, {"127.0.0.1:7820": "localhost:7820"}
    )
    changes = m.heard("n2", "127.0.0.1:7820", 1, True, 0, 0.0, ("n1", "n2"))
    assert [c.address for c in changes] == ["localhost:7820"]
    assert (
        list(m.peers) == ["localhost:7820"]
        and m.peer_at("127.0.0.1:7820") is m.peers["localhost:7820"]
    )
    assert m.introduce(("127.0.0.1:7820",), 0.0) == ([], 0)  # a join naming it: known
