"""Servers and peers written as ZeroMQ endpoints (review24 F10): ``tcp://host:port`` is
host:port; another scheme is refused at once, saying what to write."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from helpers import NodeProcess, run_cli

from meshreg import Client
from meshreg.addresses import parse_address, split_node_address
from meshreg.config import load_node_config
from meshreg.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tcp://127.0.0.1:27800", ("127.0.0.1", 27800)),
        ("TCP://node-a:7810", ("node-a", 7810)),
        ("tcp://[::1]:7800", ("::1", 7800)),
        ("tcp://node-a", ("node-a", 7800)),  # the default port, as for "node-a"
        (" 127.0.0.1:7800 ", ("127.0.0.1", 7800)),
    ],
)
def test_a_tcp_endpoint_is_its_host_and_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("http://127.0.0.1:7800", "not a http:// URL"),
        ("ipc:///tmp/meshreg", "not a ipc:// URL"),
        ("tcp://", r"expected tcp://host:port \(no path\)"),
        ("tcp://127.0.0.1:7800/x", r"expected tcp://host:port \(no path\)"),
    ],
)
def test_another_url_is_refused_saying_what_to_write(text: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        parse_address(text)
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match="bad address"):
        Client(text)  # at construction: no time-out to wait
    assert time.monotonic() - t0 < 1.0


def test_a_client_takes_tcp_endpoints_as_servers() -> None:
    c = Client("tcp://127.0.0.1:27800,tcp://127.0.0.1:27804")
    try:
        assert c.servers == [("127.0.0.1", 27800), ("127.0.0.1", 27804)]
    finally:
        c.close(timeout=0.5)


def test_a_client_without_servers_takes_meshreg_servers_as_the_cli_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A new user's review: the README names MESHREG_SERVERS beside ``Client([...])``,
    and only the CLI read it."""
    monkeypatch.setenv("MESHREG_SERVERS", "127.0.0.1:27810,127.0.0.1:27814")
    with Client(handle_sigterm=False) as c:
        assert c.servers == [("127.0.0.1", 27810), ("127.0.0.1", 27814)]
    with Client("127.0.0.1:27820", handle_sigterm=False) as c:  # given: the variable is not read
        assert c.servers == [("127.0.0.1", 27820)]
    monkeypatch.delenv("MESHREG_SERVERS")
    with Client(handle_sigterm=False) as c:
        assert c.servers == [("127.0.0.1", 7800)]


def test_a_node_takes_tcp_endpoints_as_peers(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text(
        '[node]\nport = 27900\n[cluster]\npeers = ["tcp://127.0.0.1:27900", '
        '"tcp://127.0.0.1:27910"]\n'
    )
    assert load_node_config(path).peer_addresses() == ["127.0.0.1:27910"]
    path.write_text('[cluster]\npeers = ["tcp://127.0.0.1"]\n')
    with pytest.raises(ConfigError, match=r"has no port.*e\.g\. 127\.0\.0\.1:7800\)"):
        load_node_config(path).peer_addresses()


@pytest.mark.timeout(60)
def test_the_cli_pings_a_tcp_endpoint(tmp_path: Path) -> None:
    node = NodeProcess("--data-dir", str(tmp_path / "d"))
    try:
        node.start()
        out = run_cli("ping", "-s", f"tcp://{node.address}")
        assert out.returncode == 0, out.stderr
        assert "pong" in out.stdout
        bad = run_cli("ping", "-s", f"http://{node.address}")
        assert bad.returncode != 0 and "not a http:// URL" in bad.stderr + bad.stdout
    finally:
        node.cleanup()


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:7800", ("127.0.0.1", 7800)),
        ("fd77::2:7800", ("fd77::2", 7800)),  # as a node keeps its peers: bare, port last
        ("[fd77::2]:7810", ("fd77::2", 7810)),
        ("node-b:7800", ("node-b", 7800)),
    ],
)
def test_a_node_address_splits_at_its_last_colon(address: str, expected: tuple[str, int]) -> None:
    """A node's own spelling of a peer (``fd77::2:7800``) is host and port; read as an
    operator's input it was the host ``fd77::2:7800`` on port 7800 (an IPv6 cluster never
    formed: tests/chaos ``kill-ipv6``)."""
    assert split_node_address(address) == expected


@pytest.mark.parametrize("address", ["7800", "host:", "host:0", "host:x", ":7800"])
def test_a_node_address_without_a_port_is_refused(address: str) -> None:
    with pytest.raises(ConfigError, match="expected host:port"):
        split_node_address(address)


@pytest.mark.parametrize("text", ["fd77::2:7800", "::1:7800"])
def test_an_ipv6_address_that_may_end_in_a_port_is_refused(text: str) -> None:
    """Taken as a host alone, ``fd77::2:7800`` sent a client to port 7800 of that host;
    the refusal gives both bracketed forms."""
    head, _, port = text.rpartition(":")
    with pytest.raises(ConfigError, match=re.escape(f"[{head}]:{port} if {port} is the port")):
        parse_address(text)
    with pytest.raises(ConfigError, match="takes brackets"):
        Client(text)


@pytest.mark.parametrize(
    ("text", "expected"), [("::1", ("::1", 7800)), ("fe80::1", ("fe80::1", 7800))]
)
def test_an_ipv6_host_alone_takes_the_default_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected
