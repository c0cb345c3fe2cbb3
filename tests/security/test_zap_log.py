"""The ZAP handler's refusal line says which plane, which key, and why: an ACL client's
key sent to a peer port is named as that client (review5), not just "not the cluster key"."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import zmq

from meshreg.log_limiter import LogLimiter
from meshreg.transport.zap import CLIENT_DOMAIN, PEER_DOMAIN, ZAP_ENDPOINT, ZapHandler

NODE = b"N" * 32
OPS = b"O" * 32
STRANGER = b"S" * 32


@pytest.fixture
def zap() -> Any:
    ctx = zmq.Context()
    handler = ZapHandler(ctx, NODE, {OPS: "ops"}.get, clock=lambda: 0.0)
    req = ctx.socket(zmq.DEALER)
    req.setsockopt(zmq.LINGER, 0)
    req.connect(ZAP_ENDPOINT)

    def ask(domain: bytes, key: bytes, mechanism: bytes = b"CURVE") -> list[bytes]:
        creds = [key] if key else []
        req.send_multipart([b"", b"1.0", b"7", domain, b"10.9.8.7", b"", mechanism, *creds])
        assert handler.socket.poll(5000), "the ZAP request never arrived"
        handler.drain()
        assert req.poll(5000), "no ZAP reply"
        return req.recv_multipart()

    handler._limiter = LogLimiter(logging.getLogger("meshreg.node"), interval=0.0)  # each line
    yield handler, ask
    req.close(linger=0)
    handler.close()
    ctx.term()


def test_a_client_key_on_the_peer_port_is_named(zap: Any, caplog: Any) -> None:
    handler, ask = zap
    with caplog.at_level(logging.WARNING, logger="meshreg.node"):
        reply = ask(PEER_DOMAIN, OPS)
    assert reply[3] == b"400" and handler.refused == 1
    line = caplog.records[-1].getMessage()
    assert "refused a peer connection from 10.9.8.7" in line
    assert zmq.utils.z85.encode(OPS).decode() in line
    assert "ACL client 'ops'" in line and "never to the peer ports" in line


def test_a_stranger_on_each_plane_and_a_missing_key(zap: Any, caplog: Any) -> None:
    handler, ask = zap
    with caplog.at_level(logging.WARNING, logger="meshreg.node"):
        assert ask(PEER_DOMAIN, STRANGER)[3] == b"400"
        assert "is not the cluster key (every node" in caplog.records[-1].getMessage()
        assert ask(CLIENT_DOMAIN, STRANGER)[3] == b"400"
        assert "in neither the ACL nor the cluster key" in caplog.records[-1].getMessage()
        assert ask(CLIENT_DOMAIN, b"", b"NULL")[3] == b"400"
        assert "key missing is not CURVE with a key" in caplog.records[-1].getMessage()
    assert handler.refused == 3


def test_admitted_keys_get_their_user_ids(zap: Any) -> None:
    _handler, ask = zap
    assert ask(CLIENT_DOMAIN, OPS)[3:6] == [b"200", b"OK", zmq.utils.z85.encode(OPS)]
    assert ask(PEER_DOMAIN, NODE)[3:6] == [b"200", b"OK", b"node"]
