"""review69 F5: a peer named by a host name that resolves to IPv6 addresses only (an
IPv6-only cluster whose peer list uses names, as README allows and ``peer_aliases``
resolves with getaddrinfo): ``ZmqTransport.connect_replication`` resolves it with
``tcp_endpoint`` -> ``socket.gethostbyname`` (IPv4 only), so the node fails to start
("cannot resolve host"); and ``_ipv6_if_needed`` sets ``IPV6`` only for literals
(``":" in host``), so libzmq, which resolves names itself, cannot reach such a peer on
the peer DEALER or the replication SUB either.  (The name's resolution is simulated in
Python: the test needs no DNS.)"""

from __future__ import annotations

import socket

import pytest

from meshreg.transport.zeromq import ZmqTransport


def test_f5_a_peer_named_by_an_ipv6_only_name_does_not_stop_the_node(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_gai = socket.getaddrinfo

    def gethostbyname(host: str) -> str:
        if host == "node6.example":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")  # no A
        return real_gai(host, None, socket.AF_INET)[0][4][0]

    def getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host == "node6.example":
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port or 0, 0, 0))]
        return real_gai(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "gethostbyname", gethostbyname)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    transport = ZmqTransport()
    try:
        sub = transport.connect_replication(["node6.example:7800"])  # raised ConfigError
        sub.close(linger=0)
    finally:
        transport.close()
