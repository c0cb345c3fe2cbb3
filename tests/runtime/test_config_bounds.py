"""Node configuration: empty host, time bounds, node_id type, a peer entry naming the node
itself, and the port range (issue 10: M10, L5)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from helpers import free_port_pair, meshreg_cmd, raw_request

from meshreg import Client
from meshreg.config import TIME_BOUNDS, NodeConfig, load_node_config
from meshreg.errors import ConfigError


def load(tmp_path: Path, text: str) -> NodeConfig:
    path = tmp_path / "node.toml"
    path.write_text(text)
    return load_node_config(path)


@pytest.mark.parametrize("host", ["", "   "])
def test_empty_host_is_rejected_in_toml(tmp_path: Path, host: str) -> None:
    with pytest.raises(ConfigError, match=r"\[node\] host must not be empty.*127\.0\.0\.1"):
        load(tmp_path, f'[node]\nhost = "{host}"\n')


def test_empty_host_flag_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"--host.*must not be empty.*0\.0\.0\.0"):
        NodeConfig().with_overrides(host="")


@pytest.mark.parametrize(
    "table,key,value",
    [
        ("health", "check_interval", "1e-9"),
        ("health", "check_interval", "0.01"),
        ("health", "check_interval", "1e9"),
        ("health", "unhealthy_after", "1e12"),
        ("health", "evict_after", "1e12"),
        ("cluster", "peer_timeout", "0.001"),
        ("cluster", "peer_timeout", "1e6"),
        ("cluster", "beacon_interval", "1e-6"),
        ("cluster", "anti_entropy_interval", "1e-6"),
        ("cluster", "peer_request_timeout", "1e-6"),
        ("cluster", "peer_request_timeout", "1e6"),
    ],
)
def test_time_settings_out_of_bounds_are_rejected(
    tmp_path: Path, table: str, key: str, value: str
) -> None:
    with pytest.raises(ConfigError, match=key):
        load(tmp_path, f"[{table}]\n{key} = {value}\n")


def test_flags_are_held_to_the_same_bounds() -> None:
    with pytest.raises(ConfigError, match=r"check_interval must be in 0\.05"):
        NodeConfig().with_overrides(check_interval=1e-9)
    with pytest.raises(ConfigError, match="peer_timeout"):
        NodeConfig().with_overrides(peer_timeout=0.01)


def test_unhealthy_after_must_exceed_check_interval() -> None:
    with pytest.raises(ConfigError, match="unhealthy_after .* must be above check_interval"):
        NodeConfig().with_overrides(check_interval=10.0, unhealthy_after=5.0, evict_after=20.0)


def test_the_defaults_and_the_bounds_themselves_are_accepted() -> None:
    NodeConfig().validate()
    for low, high in TIME_BOUNDS.values():
        assert 0 < low < high
    NodeConfig().with_overrides(check_interval=0.05, unhealthy_after=0.3, evict_after=0.3)
    NodeConfig().with_overrides(peer_timeout=0.2)  # beacon interval derived: 1/6 of it


@pytest.mark.parametrize("value", ["5", "true", "1.5", "[1]"])
def test_non_string_node_id_is_rejected(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="node_id must be a string"):
        load(tmp_path, f"[cluster]\nnode_id = {value}\n")


def test_node_id_with_control_characters_is_rejected() -> None:
    with pytest.raises(ConfigError, match="node_id"):
        NodeConfig().with_overrides(node_id="a\x1b[31m")
    assert load_node_config(None).with_overrides(node_id="node-a").effective_node_id == "node-a"


def test_a_peer_entry_naming_this_node_is_dropped() -> None:
    """Dropped here, logged once by the node at start (review24 F13: the list is read in
    several places, and each read logged it)."""
    cfg = NodeConfig(
        host="127.0.0.1",
        port=7800,
        peers=("localhost:7800", "127.0.0.1:7800", "127.0.0.1:7900", "localhost:7901"),
    )
    assert cfg.peer_addresses() == ["127.0.0.1:7900", "localhost:7901"]
    assert cfg.self_peers() == ["localhost:7800", "127.0.0.1:7800"]


def test_a_node_on_every_interface_knows_its_loopback_name() -> None:
    cfg = NodeConfig(host="0.0.0.0", port=7800, peers=("localhost:7800", "127.0.0.1:7801"))
    assert cfg.peer_addresses() == ["127.0.0.1:7801"]


def test_an_unresolvable_peer_is_kept_as_another_node() -> None:
    cfg = NodeConfig(port=7800, peers=("no-such-host.invalid:7800",))
    assert cfg.peer_addresses() == ["no-such-host.invalid:7800"]


def test_port_range_leaves_room_for_the_four_ports() -> None:
    NodeConfig(port=65532).validate()
    for port in (0, 65533, 65535):
        with pytest.raises(ConfigError, match=r"1\.\.65532 .*port\+3"):
            NodeConfig(port=port).validate()


def test_node_command_rejects_an_empty_host_in_one_line() -> None:
    out = subprocess.run(
        meshreg_cmd("node", "--host", "", "--port", str(free_port_pair())),
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "--host" in lines[0] and "127.0.0.1" in lines[0], out.stderr


def test_a_node_given_itself_as_peer_lists_no_down_peer(start_node) -> None:  # type: ignore[no-untyped-def]
    port = free_port_pair()
    node = start_node("--peer", f"localhost:{port}", port=port)
    members = raw_request(port, {"v": 1, "id": 1, "op": "cluster"})["result"]["members"]
    assert [m["address"] for m in members] == [node.address]
    assert f"peer localhost:{port} is this node" in node.log()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"beat_interval": 1e-9},
        {"beat_interval": 1e9},
        {"attempt_timeout": 1e-9},
        {"resync_interval": 0.001},
        {"avoid_failed_for": -1},
        {"timeout": True},
    ],
)
def test_client_time_settings_are_bounded(kwargs: dict[str, float]) -> None:
    name = next(iter(kwargs))
    with pytest.raises(ConfigError, match=f"{name} must be in"):
        Client(["127.0.0.1:1"], **kwargs)


def test_replication_batch_from_the_flag_and_the_file(tmp_path: Path) -> None:
    assert NodeConfig().replication_batch == 256
    assert NodeConfig().with_overrides(replication_batch=1).replication_batch == 1
    assert load(tmp_path, "[cluster]\nreplication_batch = 8\n").replication_batch == 8
    for bad in (0, 10_000):
        with pytest.raises(ConfigError, match=r"replication_batch.*1\.\.\d+.*got"):
            NodeConfig().with_overrides(replication_batch=bad)
    with pytest.raises(ConfigError, match=r"replication_batch.*whole number"):
        load(tmp_path, '[cluster]\nreplication_batch = "many"\n')


def test_config_force_ready_from_the_file_and_the_flag(tmp_path: Path) -> None:
    """``[config] force_ready`` is ``--config-force-ready`` in the file (docs/CONFIG.md,
    "The node"); the flag, given, wins; anything but a boolean is refused."""
    assert NodeConfig().config_force_ready is False
    forced = load(tmp_path, "[config]\nforce_ready = true\n")
    assert forced.config_force_ready is True
    assert load(tmp_path, "[config]\nforce_ready = false\n").config_force_ready is False
    assert forced.with_overrides(config_force_ready=None).config_force_ready is True  # no flag
    plain = load(tmp_path, "[config]\nkeep_days = 7\n")
    assert plain.with_overrides(config_force_ready=True).config_force_ready is True  # the flag
    for bad in ('"yes"', "1"):
        with pytest.raises(ConfigError, match=r"\[config\] force_ready must be true or false"):
            load(tmp_path, f"[config]\nforce_ready = {bad}\n")
    with pytest.raises(ConfigError, match="unknown key"):
        load(tmp_path, "[config]\nforce_readyy = true\n")


def test_config_join_existing_from_the_file_and_the_flag(tmp_path: Path) -> None:
    """``[config] join_existing`` is ``--config-join-existing`` in the file (review43 F1);
    the flag, given, wins; anything but a boolean is refused."""
    assert NodeConfig().config_join_existing is False
    joining = load(tmp_path, "[config]\njoin_existing = true\n")
    assert joining.config_join_existing is True
    assert joining.with_overrides(config_join_existing=None).config_join_existing is True
    plain = load(tmp_path, "[config]\nkeep_days = 7\n")
    assert plain.with_overrides(config_join_existing=True).config_join_existing is True
    for bad in ('"yes"', "1"):
        with pytest.raises(ConfigError, match=r"\[config\] join_existing must be true or false"):
            load(tmp_path, f"[config]\njoin_existing = {bad}\n")


@pytest.mark.parametrize("peer", ["127.0.0.1", "node-b", "[::1]"])
def test_a_peer_without_a_port_is_refused_naming_it(tmp_path: Path, peer: str) -> None:
    """review19 F3: it was taken as port 7800, silently (on a node at 7800: itself, so the
    node ran alone)."""
    with pytest.raises(ConfigError, match=r"has no port: give every peer as host:port"):
        load(tmp_path, f'[cluster]\npeers = ["{peer}", "127.0.0.1:7810"]\n')


def test_config_center_settings_are_named_as_in_the_file(tmp_path: Path) -> None:
    """review19 F2: errors named internal names (config_keep_days) a user cannot find."""
    with pytest.raises(ConfigError, match=r"\[config\] keep_days must be"):
        load(tmp_path, "[config]\nkeep_days = -1\n")
    with pytest.raises(ConfigError, match=r"\[config\] keep_revisions must be"):
        load(tmp_path, "[config]\nkeep_revisions = -5\n")


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_a_loopback_host_needs_no_key(host: str) -> None:
    """review19 F9: ``::1`` was refused as "not loopback" (an IPv4-only lookup)."""
    from meshreg.runtime.node import _is_loopback

    assert _is_loopback(host)
    assert not _is_loopback("10.255.255.1") and not _is_loopback("no-such-host.invalid")


@pytest.mark.parametrize(
    ("peers", "bad"),
    [
        (("127.0.0.1:24100", "127.0.0.1:24119"), "peer 127.0.0.1:24119"),  # P+2 is ours +1
        (("127.0.0.1:24100", "127.0.0.1:24102"), "peer 127.0.0.1:24100 and peer 127.0.0.1:24102"),
        (("localhost:24123",), "peer localhost:24123"),  # one host, spelled otherwise
        (("127.0.0.1:24100", "127.0.0.1:24110"), None),  # 4+ apart: fine
        (("10.0.0.1:24121", "10.0.0.2:24122"), None),  # other hosts: their own ports
    ],
)
def test_nodes_on_one_host_with_overlapping_ports_are_refused(
    peers: tuple[str, ...], bad: str | None
) -> None:
    """An operations review: a peer typed 24119 beside a node at 24120 made the node's
    replication socket read its own notification port (24121) and log "bad replication
    message" every second, naming nothing.  Overlapping port ranges are a typo: refused
    at start, naming both."""
    config = NodeConfig(port=24120, peers=("127.0.0.1:24120", *peers))
    if bad is None:
        config.validate()
        return
    with pytest.raises(ConfigError, match="overlapping ports") as info:
        config.validate()
    assert bad in str(info.value) and "a typo in a port?" in str(info.value)


def test_overlapping_ports_seen_through_the_advertised_address() -> None:
    """A node bound to every interface is its advertised host for the port check: a peer
    at that host 2 ports up shares its range (the check compared the bind address alone,
    0.0.0.0, and let it start: a leftover of the operations review)."""
    config = NodeConfig(
        host="0.0.0.0", advertise="10.0.0.5", port=24120,
        peers=("10.0.0.5:24120", "10.0.0.5:24122"),
    )  # fmt: skip
    with pytest.raises(ConfigError, match="overlapping ports") as info:
        config.validate()
    assert "peer 10.0.0.5:24122" in str(info.value)
    NodeConfig(
        host="0.0.0.0", advertise="10.0.0.5", port=24120,
        peers=("10.0.0.5:24120", "10.0.0.5:24130", "10.0.0.6:24122"),
    ).validate()  # fmt: skip
