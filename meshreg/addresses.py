"""Addresses and ports: what a client needs to reach a node, without the node's settings.

A node is named by one address ``host:port`` (the ROUTER that clients and
peers send requests to).  Every other port derives from it by a fixed offset:

* ``port + 1`` (``PUB_PORT_OFFSET``): change notifications to clients (XPUB -> SUB);
* ``port + 2`` (``REPLICATION_PORT_OFFSET``): replication between nodes (PUB -> SUB),
  bound only when the node has peers;
* ``port + 3`` (``PEER_PORT_OFFSET``): requests between nodes (forwarded writes, digest
  pages, reconciles; ROUTER <- DEALER), bound only when the node has peers.  Peer
  operations are never accepted on ``port``: the plane a request arrives on, not its
  shape, says whether a peer sent it.

Apart from meshreg/config (the node's settings, which import the policies of the core):
the client and the CLI's client commands import this alone, so they start without
loading the node's modules (bench/startup.py).
"""

from __future__ import annotations

from meshreg.errors import ConfigError

DEFAULT_HOST = "127.0.0.1"  # loopback: a node is not exposed until asked to be
DEFAULT_PORT = 7800  # the request (ROUTER) port; clients use host:port
PUB_PORT_OFFSET = 1  # notifications are published on port + 1
REPLICATION_PORT_OFFSET = 2  # peers replicate over port + 2
PEER_PORT_OFFSET = 3  # peers send each other requests on port + 3
PORT_SPAN = 4  # ports a node uses: port .. port + 3


def split_node_address(address: str) -> tuple[str, int]:
    """A node's address as the node spells it (``host:port``, an IPv6 host bare as in
    ``::1:7800``, or in brackets) -> (host, port): the port follows the last colon.  For
    the addresses a node derives from its settings (its peer list, parsed once), not for
    what an operator typed: there a bare IPv6 address is a host alone (``parse_address``),
    and reading ``::1:7810`` so sent a node's peer connections to port 7800 of host
    ``::1:7810`` (an IPv6 cluster never formed)."""
    host, sep, port = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"bad node address {address!r}: expected host:port")
    return host, int(port)


def _refuse_ambiguous_ipv6(text: str) -> None:
    """Refuse ``fd77::2:7800``: a valid IPv6 address, and also ``fd77::2`` with a port;
    taken as the host alone, it sent a client to port 7800 of ``fd77::2:7800``.  ``::1``
    or ``fe80::1`` (whose head is no address) stay hosts on the default port."""
    head, _, tail = text.rpartition(":")
    if not (tail.isdigit() and 0 < int(tail) < 65536):
        return
    import ipaddress  # (here: a client's start imports this module, rarely this path)

    try:
        ipaddress.ip_address(head)
    except ValueError:
        return
    raise ConfigError(
        f"bad address {text!r}: an IPv6 address takes brackets: [{head}]:{tail} if {tail} is "
        f"the port, or [{text}]:PORT for that host"
    )


def parse_address(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``, or ``host``; each may be written as a ZeroMQ TCP
    endpoint, ``tcp://host:port``) -> (host, port).  Another scheme is refused."""
    text = given = text.strip()
    if not text:
        raise ConfigError("empty server address; expected host:port, e.g. 127.0.0.1:7800")
    scheme, sep, rest = text.partition("://")
    if sep:  # a URL: meshreg speaks ZeroMQ over TCP, whose endpoints read tcp://host:port
        if scheme.lower() != "tcp":
            raise ConfigError(
                f"bad address {given!r}: meshreg nodes are reached over TCP; give host:port "
                f"(or tcp://host:port), e.g. 127.0.0.1:7800, not a {scheme}:// URL"
            )
        text = rest
        if not text or "/" in text:
            raise ConfigError(
                f"bad address {given!r}: expected tcp://host:port (no path), e.g. "
                "tcp://127.0.0.1:7800"
            )
    if any(c.isspace() for c in text):
        raise ConfigError(
            f"bad address {text!r}: separate several servers with commas, e.g. a:7800,b:7800"
        )
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ConfigError(f"bad address {text!r}: missing ']'")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ConfigError(f"bad address {text!r}: expected [host]:port")
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:  # an IPv6 address without brackets: a host alone, unless it may end in a port
        _refuse_ambiguous_ipv6(text)
    if not host:
        raise ConfigError(f"bad address {text!r}: no host; expected host:port")
    if not port_text:
        return host, default_port
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"bad address {text!r}: port {port_text!r} is not a number") from None
    if not 0 < port < 65536:
        raise ConfigError(f"bad address {text!r}: port must be in 1..65535")
    return host, port
